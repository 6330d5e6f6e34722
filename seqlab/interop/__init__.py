"""Interoperability with other frameworks: importing their weights as seqlab params."""
