"""Every cell preset and every registered model trains from a config file with command-line
style overrides, in process (`seqlab.main.train`, what `python -m seqlab.main` runs): the
training loss falls within a few steps and the workdir holds its files."""

import pytest
from config_testing import STEPS, make_config, train_and_check

from seqlab import cells, models
from seqlab import config as base
from seqlab.train import modes

COPY = {"task.options.num_train": 64, "task.options.num_validation": 16,
        "task.options.num_test": 16, "task.options.delay": 3, "task.options.num_symbols": 3,
        "optimizer.learning_rate": 1e-2}
CHAR = {"task.options.max_chars": 20_000, "train.seq_len": 16, "train.tbptt_k2": 16,
        "decode.max_len": 4, "decode.prefixes": ("the",), "optimizer.learning_rate": 1e-2}
TRANSLATION = {"task.options.max_number": 60, "task.options.max_ordinal": 5,
               "task.options.num_dates": 0, "train.pad_multiple": 32, "decode.max_len": 16,
               "decode.beam_width": 2, "optimizer.warmup_steps": 0,
               "optimizer.decay_steps": STEPS, "optimizer.learning_rate": 1e-2}
CLASSIFY = {"task.options.num_train": 64, "task.options.num_validation": 16,
            "task.options.num_test": 16, "task.options.max_length": 8}

# name -> (config file, variant, overrides): the tiny run that trains it.
CELL_RUNS = {name: ("copy", f"cell={name}", {**COPY, "model.hidden_size": 8})
             for name in base.CELL_PRESETS}
MODEL_RUNS = {
    "rnn": ("copy", "model=rnn,cell=gru", {**COPY, "model.hidden_size": 8}),
    "jordan": ("copy", "model=jordan", {**COPY, "model.hidden_size": 8}),
    "bidirectional": ("copy", "model=bidirectional,cell=gru", {**COPY, "model.hidden_size": 8}),
    "deep": ("copy", "model=deep,cell=elman", {
        **COPY, "model.hidden_sizes": (8, 8), "model.transition_mlp": (8,),
        "model.transition_shortcut": True}),
    "tdnn": ("copy", "model=tdnn", {**COPY, "model.features": (8, 8)}),
    "seq2seq": ("translation", "model=attention,cell=gru", {
        **TRANSLATION, "model.hidden_size": 16, "model.embed_size": 8,
        "model.attention_size": 8, "model.bidirectional": True}),
    "transformer": ("translation", "model=transformer", {
        **TRANSLATION, "model.d_model": 16, "model.d_ff": 32, "model.num_layers": 1}),
    "tree": ("tree", "operators=+,max_leaves=3", {
        "task.options.num_train": 64, "task.options.num_validation": 16,
        "task.options.num_test": 16, "model.hidden_size": 8, "model.composition": "tensor",
        "optimizer.learning_rate": 1e-2}),
    "esn": ("esn", "rho=0.9", {"task.options.num_samples": 1500, "task.options.window": 50,
                               "task.options.stride": 25, "model.hidden_size": 20,
                               "problem.readout_fit": "gradient", "problem.washout": 10,
                               "optimizer.learning_rate": 1e-2}),
    "nplm": ("char_lstm", "model=nplm", {**CHAR, "model.hidden_size": 16}),
    "transformer_lm": ("char_lstm", "model=transformer_lm", {
        **CHAR, "model.d_model": 16, "model.d_ff": 32, "model.num_layers": 1}),
    "transformer_classifier": ("classify", "task=parity,model=transformer", {
        **CLASSIFY, "model.d_model": 16, "model.d_ff": 32, "model.num_layers": 1,
        "optimizer.learning_rate": 1e-2}),
    "grid": ("classify", "task=digits,model=grid", {"model.hidden_size": 8,
                                                    "optimizer.learning_rate": 1e-2}),
    "rnn_lm": ("word_lm", "head=hierarchical,vocab=500", {
        **CHAR, "model.hidden_size": 16, "model.embed_size": 8}),
}


# In CI: the cells and models that no other end-to-end test trains from a config (the rest
# are `slow`: run them with --runslow, ~12 s each on 2 cores).
QUICK_CELLS = ("clockwork", "coupled_lstm")
QUICK_MODELS = ("jordan", "bidirectional", "tdnn", "rnn_lm")


def _params(names, quick):
  return [pytest.param(n, marks=() if n in quick else pytest.mark.slow) for n in sorted(names)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("data")


def test_every_cell_family_and_model_has_a_run():
  assert {family for family, _ in base.CELL_PRESETS.values()} == set(cells.CELLS)
  assert set(MODEL_RUNS) == set(models.MODELS)


@pytest.mark.parametrize("cell", _params(CELL_RUNS, QUICK_CELLS))
def test_every_cell_trains_from_the_command_line(cell, tmp_path, data_dir):
  train_and_check(CELL_RUNS[cell], tmp_path / cell, data_dir)


@pytest.mark.parametrize("model", _params(MODEL_RUNS, QUICK_MODELS))
def test_every_model_trains_from_the_command_line(model, tmp_path, data_dir):
  train_and_check(MODEL_RUNS[model], tmp_path / model, data_dir)


def test_cell_options_are_flags_and_foreign_ones_are_named(tmp_path, data_dir):
  config = make_config("copy", "cell=clockwork", {**COPY, "model.hidden_size": 8,
                                                 "model.cell_options.periods": (1, 3)}, data_dir)
  assert config.model.cell_options.periods == (1, 3)
  with pytest.raises(KeyError, match="peephole.*locked.*periods"):  # the locked config says
    make_config("copy", "cell=clockwork", {"model.cell_options.peephole": True}, data_dir)
  config = make_config("copy", "cell=lstm", {**COPY, "model.cell": "clockwork"}, data_dir)
  with pytest.raises(ValueError, match=r"cell_options has \[.*'coupled'.*choose the cell with "
                                       r"the config's variant"):
    modes.train(config, str(tmp_path))
