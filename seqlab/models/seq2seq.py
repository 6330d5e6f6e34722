"""`Seq2Seq`: the encoder-decoder (sequence-to-sequence) architecture over any pure cell.

Encoder (reader) over the source tokens x_1..x_{T_x}, embedded by E_x:
    h_j = f_enc(h_{j-1}, E_x x_j),   a_j = its output at j (the annotations),
    C = h_{T_x}                      the context vector: the final state of each sequence.
Bidirectional encoder (Bahdanau et al. 2015): a second cell reads x_{T_x}..x_1,
    a_j = [h->_j; h<-_j],  C = [h->_{T_x}; h<-_1],  the decoder starts from h<-_1's carry,
so each annotation summarises the whole source, most of all the words around j.
Decoder (writer) from s_0 = C (init_decoder "copy"), tanh(C W_s + b_s) ("dense") or 0:
    alpha_t = softmax_j(score(s_{t-1}, a_j)),  c_t = sum_j alpha_tj a_j     (with attention)
    s_t = f_dec(s_{t-1}, [E_y y_{t-1}; c_t; C])  (c_t with attention, C with `condition`)
    P(y_t | y_<t, x) = softmax(o_t V + b_V),  o_t = [s_t; c_t]  (s_t without attention)
the notes' h_t = f_2(h_{t-1}, y_{t-1}, c_t) and P(y_t | ...) = f_1(y_{t-1}, h_t, c_t).
Teacher forcing feeds y_0 = <bos> and then the target's previous tokens; `greedy` runs
free, feeding back argmax_y P(y_t | ...). The scanned decoder step is `Decoder.__call__`:
the pure cell step plus the attention. The model step interface of every decoder
(seqlab.decode) is `start(src, src_lengths) -> state`, `step(state, y_{t-1}) -> (state,
logits)`.

When the output ends (`length_strategy`), the notes' three options:
    "eos":    an end-of-sequence symbol, the target's last token.
    "stop":   a Bernoulli output p_t = sigmoid(w . s_t + b) = P(y_t is the last token),
              trained with binary cross-entropy; decoding stops after the first p_t > 0.5.
    "length": a predicted length P(T_y = k | x) = softmax(C W_l + b_l)_k, k = 1..max_length,
              trained as a classification; decoding emits exactly argmax_k tokens.
`loss` = mean token cross-entropy over the real target tokens + the stop/length term.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from seqlab import losses, unroll
from seqlab.models.recurrent import Recurrent
from seqlab.models.seq2seq_decoder import (  # noqa: F401 (re-exported)
    Decoder,
    DecoderState,
    Memory,
    StepOutput,
    hidden,
)

Array = jax.Array
STRATEGIES = ("eos", "stop", "length")


class Outputs(NamedTuple):
  """Teacher-forced outputs: logits [B, T_y, V], stop [B, T_y], length [B, max_length], alpha."""

  logits: Array
  stop_logits: Array | None
  length_logits: Array | None
  alpha: Array | None  # [B, T_y, T_x]


class Decoded(NamedTuple):
  """Free-running output: tokens [B, L] (pad after the end), lengths [B], alpha [B, L, T_x].

  A length counts every emitted token, the <eos> included ("eos"), as `with_eos` does.
  """

  tokens: Array
  lengths: Array
  alpha: Array | None


def with_eos(targets: Array, lengths: Array, eos_id: int, pad_id: int = 0) -> tuple[Array, Array]:
  """Targets with <eos> written after each sequence ([B, T + 1]), and lengths + 1."""
  padded = jnp.pad(targets, ((0, 0), (0, 1)), constant_values=pad_id)
  return padded.at[jnp.arange(targets.shape[0]), lengths].set(eos_id), lengths + 1


def _scan(fn, **kwargs):
  """nn.scan over a function of the decoder: params shared by every step."""
  return nn.scan(fn, variable_broadcast="params", split_rngs={"params": False}, **kwargs)


class Seq2Seq(nn.Module):
  """Encoder-decoder over pure cells: context vector C, optional attention, three end rules.

  Attributes:
    vocab_size: source vocabulary size (and the target's unless output_size).
    cell, hidden_size, cell_options: the encoder's cell (and the decoder's by default).
    bidirectional: a backward encoder too; annotations and C are [forward; backward] (2H).
    embed_size: token embedding size (source and target).
    decoder_cell, decoder_hidden_size, decoder_cell_options: the decoder's, if different
      (a different decoder cell does not inherit cell_options).
    output_size: the target (output) vocabulary size (default vocab_size).
    attention: None, "dot", "general" or "additive".
    attention_size: hidden size of the additive score's MLP (default: decoder size).
    init_decoder: s_0 = C's carry ("copy"), tanh(C W_s + b_s) ("dense") or 0 ("zeros").
    condition: also feed C as an input at every decoder step.
    length_strategy: "eos", "stop" or "length".
    max_length: the largest predicted length ("length") and the default decoding length.
    bos_id, eos_id, pad_id: special target ids (<bos> starts decoding; pad fills the end).
    unroll: encoder `lax.scan` unroll factor.
    dtype: computation dtype (params stored float32).
  """

  vocab_size: int
  cell: str = "lstm"
  hidden_size: int = 64
  embed_size: int = 32
  cell_options: Mapping[str, Any] | None = None
  bidirectional: bool = False
  decoder_cell: str | None = None
  decoder_hidden_size: int | None = None
  decoder_cell_options: Mapping[str, Any] | None = None
  output_size: int | None = None
  attention: str | None = None
  attention_size: int | None = None
  init_decoder: str = "copy"
  condition: bool = False
  length_strategy: str = "eos"
  max_length: int = 32
  bos_id: int = 1
  eos_id: int = 2
  pad_id: int = 0
  unroll: int = 1
  dtype: Any = jnp.float32

  def setup(self):
    if self.length_strategy not in STRATEGIES:
      raise ValueError(f"unknown length_strategy {self.length_strategy!r}; known: {STRATEGIES}")
    self.src_embed = nn.Embed(self.vocab_size, self.embed_size, dtype=self.dtype)
    self.encoder = Recurrent(self.cell, self.hidden_size, self.cell_options, unroll=self.unroll,
                             dtype=self.dtype)
    if self.bidirectional:
      self.backward_encoder = Recurrent(self.cell, self.hidden_size, self.cell_options,
                                        reverse=True, unroll=self.unroll, dtype=self.dtype)
    self.decoder = Decoder(
        cell=self.decoder_cell or self.cell,
        hidden_size=self.decoder_hidden_size or self.hidden_size,
        vocab_size=self.output_size or self.vocab_size,
        embed_size=self.embed_size,
        memory_size=self.hidden_size * (2 if self.bidirectional else 1),
        attention=self.attention,
        attention_size=self.attention_size,
        condition=self.condition,
        init_decoder=self.init_decoder,
        stop_output=self.length_strategy == "stop",
        cell_options=self.decoder_cell_options or (
            self.cell_options if self.decoder_cell in (None, self.cell) else None),
        dtype=self.dtype,
    )
    if self.length_strategy == "length":
      self.length_head = nn.Dense(self.max_length, dtype=self.dtype)

  def start(self, src: Array, src_lengths: Array | None = None,
            max_length: int | None = None) -> DecoderState:
    """Read the source [B, T_x] (padded after src_lengths): the decoder's initial state.

    max_length is not needed (the state does not grow with the output); it is accepted so
    that every encoder-decoder starts alike (`Transformer.start` sizes its cache by it).
    """
    del max_length
    xs = self.src_embed(src)
    carry, a = self.encoder(xs, src_lengths)
    context = None
    if self.bidirectional:  # a_j = [h->_j; h<-_j], C = [h->_T; h<-_1], s_0 from h<-_1
      backward_carry, backward_a = self.backward_encoder(xs, src_lengths)
      a = jnp.concatenate([a, backward_a], -1)
      context = jnp.concatenate([hidden(carry), hidden(backward_carry)], -1)
      carry = backward_carry
    if src_lengths is None:
      mask = jnp.ones(src.shape, bool)
    else:
      mask = unroll.length_mask(src_lengths, src.shape[1])
    return self.decoder.start(carry, a, mask, context)

  def step(self, state: DecoderState, y_prev: Array) -> tuple[DecoderState, Array]:
    """One decoder step: (state, previous tokens [B]) -> (new state, logits [B, V])."""
    state, out = self.decoder(state, y_prev)
    return state, out.logits

  def length_logits(self, state: DecoderState) -> Array:
    """log P(T_y = k | x) up to a constant, k = 1..max_length: the "length" head on C."""
    return self.length_head(state.memory.context)

  def __call__(self, src: Array, src_lengths: Array | None, targets: Array) -> Outputs:
    """Teacher-forced outputs for targets [B, T_y]; the decoder reads <bos>, targets[:, :-1]."""
    state = self.start(src, src_lengths)
    out = self._teacher_forced(state, unroll.shift_right(targets, self.bos_id))
    lengths = self.length_logits(state) if self.length_strategy == "length" else None
    return Outputs(out.logits, out.stop_logit, lengths, out.alpha)

  def _teacher_forced(self, state: DecoderState, prev_tokens: Array) -> StepOutput:
    run = _scan(lambda dec, st, y: dec(st, y), in_axes=1, out_axes=1)
    return run(self.decoder, state, prev_tokens)[1]

  def alignment(self, src: Array, src_lengths: Array | None, prev_tokens: Array) -> Array:
    """alpha [B, T_y, T_x] of the attention, teacher-forced on prev_tokens (<bos>, y_1, ...)."""
    if not self.attention:
      raise ValueError("the model has no attention (config.model.attention is None)")
    return self._teacher_forced(self.start(src, src_lengths), prev_tokens).alpha

  def greedy(
      self, src: Array, src_lengths: Array | None = None, max_length: int | None = None
  ) -> Decoded:
    """Free-running decoding for at most `max_length` (static) steps, feeding back argmax."""
    steps = max_length or self.max_length
    state = self.start(src, src_lengths)
    batch = src.shape[0]
    if self.length_strategy == "length":
      n = jnp.argmax(self.length_logits(state), axis=-1) + 1
    else:
      n = jnp.full((batch,), steps)

    def body(decoder, carry, t):
      state, y_prev, done = carry
      state, out = decoder(state, y_prev)
      y = jnp.argmax(out.logits, axis=-1).astype(y_prev.dtype)
      if self.length_strategy == "eos":
        last = y == self.eos_id
      elif self.length_strategy == "stop":
        last = out.stop_logit > 0  # p_t = sigmoid(logit) > 0.5
      else:
        last = t + 1 >= n
      emit = ~done
      alpha = None if out.alpha is None else jnp.where(emit[:, None], out.alpha, 0)
      token = jnp.where(emit, y, self.pad_id)
      return (state, y, done | last), (token, emit, alpha)

    y0 = jnp.full((batch,), self.bos_id, jnp.int32)
    run = _scan(body, out_axes=1)
    _, (tokens, emitted, alpha) = run(self.decoder, (state, y0, jnp.zeros(batch, bool)),
                                      jnp.arange(steps))
    return Decoded(tokens, emitted.sum(axis=1), alpha)


def token_loss(logits: Array, targets: Array, lengths: Array) -> Array:
  """-1/N sum_{b, t < T_b} log P(y_bt | ...): mean cross-entropy over the real tokens."""
  xent, _, count = losses.token_sums(logits, targets, unroll.length_mask(lengths, targets.shape[1]))
  return xent / jnp.maximum(count, 1)


def stop_loss(stop_logits: Array, lengths: Array) -> Array:
  """Binary cross-entropy of p_t against [t = T_b - 1] over the real steps (mean)."""
  T = stop_logits.shape[1]
  mask = unroll.length_mask(lengths, T)
  last = (jnp.arange(T)[None, :] == lengths[:, None] - 1).astype(jnp.float32)
  bce = optax.sigmoid_binary_cross_entropy(stop_logits.astype(jnp.float32), last)
  return jnp.sum(bce * mask) / jnp.maximum(mask.sum(), 1)


def length_loss(length_logits: Array, lengths: Array) -> Array:
  """-mean_b log P(T_y = T_b | x): the length as a class over 1..max_length."""
  logits = length_logits.astype(jnp.float32)
  return optax.softmax_cross_entropy_with_integer_labels(logits, lengths - 1).mean()


def loss(outputs: Outputs, targets: Array, lengths: Array) -> tuple[Array, dict[str, Array]]:
  """Token cross-entropy plus the stop or length term (whichever `outputs` carries)."""
  terms = {"token": token_loss(outputs.logits, targets, lengths)}
  if outputs.stop_logits is not None:
    terms["stop"] = stop_loss(outputs.stop_logits, lengths)
  if outputs.length_logits is not None:
    terms["length"] = length_loss(outputs.length_logits, lengths)
  return sum(terms.values()), terms
