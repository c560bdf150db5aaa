"""Calibration recipes: every run's training memory is estimated before any model is built.

A recipe asking for a 1e15-parameter model must be refused by this estimate, with the numbers,
not by the allocator's out-of-memory traceback minutes later. The estimate (bytes, fp32
training with AdamW, as the calibration loop trains) is

    params  ~ 12 n_layer d_model^2 + 2 vocab d_model           (Kaplan et al. 2020 Table 1)
    memory  ~ 16 params                                         (weights, gradients, 2 AdamW moments)
            + 4 batch seq_len (34 d_model + 5 seq_len) n_layer  (activations, Korthikanti et al. 2022,
                                                                 fp32 and one head per 64 dims)

It is within a factor of a few of the truth for the tiny GPT, which is all a limit needs.
"""

from __future__ import annotations

from scalecalc.errors import RecipeError
from scalecalc.validate.limits import MAX_CALIBRATION_MEMORY_BYTES


def training_memory_bytes(n_layer: int, d_model: int, vocab: int, batch: int, seq_len: int) -> float:
    """Estimated bytes to train one model (see the module docstring)."""
    params = 12.0 * n_layer * d_model**2 + 2.0 * vocab * d_model
    heads = max(1.0, d_model / 64)
    activations = 4.0 * batch * seq_len * (34.0 * d_model + 5.0 * heads * seq_len) * n_layer
    return 16.0 * params + activations


def check_recipe(recipe, where: str) -> None:
    """Refuse a recipe any of whose runs is estimated over MAX_CALIBRATION_MEMORY_BYTES."""
    for run in recipe.runs():
        need = training_memory_bytes(run.n_layer, run.d_model, run.vocab_size, run.batch_size, run.seq_len)
        if need > MAX_CALIBRATION_MEMORY_BYTES:
            raise RecipeError(
                f"{where}: run {run.label()} (d_model {run.d_model}, {run.n_layer} layers, batch {run.batch_size} x "
                f"{run.seq_len}) needs about {need / 1024**3:,.0f} GiB to train, over the limit of "
                f"{MAX_CALIBRATION_MEMORY_BYTES / 1024**3:,.0f} GiB (MAX_CALIBRATION_MEMORY_BYTES); calibrate "
                f"with smaller models"
            )
