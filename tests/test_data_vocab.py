"""Vocabularies: specials, encode/decode round trips, save/load identity."""

import string

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqlab.data import vocab as vocab_lib
from seqlab.data.vocab import BOS, EOS, PAD, UNK, Vocab

TEXTS = ["the cat sat.", "the dog, the cat!", "héllo wörld"]


def test_specials_come_first_and_tokens_by_frequency():
  v = Vocab.build(["aab", "ab"], "char")
  assert v.tokens == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b"]  # a: 3, b: 2
  assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)


def test_word_tokens_split_punctuation():
  assert vocab_lib.tokenize("the dog, the cat!", "word") == ["the", "dog", ",", "the", "cat", "!"]


@given(st.text(alphabet=string.ascii_letters + " .,!é\n", max_size=60))
def test_char_round_trip(text):
  v = Vocab.build([text, string.ascii_letters + " .,!é\n"], "char")
  ids = v.encode(text, bos=True, eos=True)
  assert ids[0] == BOS and ids[-1] == EOS and ids.dtype == np.int32
  assert v.decode(ids) == text


@given(st.lists(st.sampled_from(["the", "cat", "sat", ",", "!", "dog"]), max_size=20))
def test_word_round_trip(tokens):
  v = Vocab.build(TEXTS, "word")
  text = " ".join(tokens)
  assert v.decode(v.encode(text, eos=True)) == text


def test_unknown_tokens_map_to_unk_and_decode_stops_at_eos():
  v = Vocab.build(["abc"], "char")
  np.testing.assert_array_equal(v.encode("abz\U0001f600"), [v.index["a"], v.index["b"], UNK, UNK])
  assert v.decode([v.index["a"], PAD, EOS, v.index["b"]]) == "a"


@pytest.mark.parametrize("level", ["char", "word"])
def test_save_and_load_are_identical(tmp_path, level):
  v = Vocab.build(TEXTS, level)
  v.save(tmp_path / "v.json")
  w = Vocab.load(tmp_path / "v.json")
  assert w == v and w.tokens == v.tokens and w.level == level
  for text in TEXTS:
    np.testing.assert_array_equal(w.encode(text), v.encode(text))


def test_unknown_level_lists_the_levels():
  known = r"known levels: \['char', 'word'\]"
  with pytest.raises(ValueError, match=rf"unknown vocabulary level 'byte'; {known}"):
    Vocab(["a"], "byte")
