"""seqlab: recurrent sequence models in JAX, from the equations of the lecture notes."""

__version__ = "0.1.0"
