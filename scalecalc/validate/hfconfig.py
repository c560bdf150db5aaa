"""Hugging Face ``config.json`` files: bounded, valid JSON, and sizes that are whole numbers
in range before any of them reaches the FLOP counter.

Real configs nest (``text_config``, ``rope_scaling``, quantisation blocks); only the keys
scalecalc reads are checked, and each must be a whole number in [1, MAX_SHAPE_DIM] (experts up
to 1,000,000), so a config with zero heads or a list where a size belongs is refused by name.
"""

from __future__ import annotations

import json
import math

from scalecalc.errors import DataError, UsageError
from scalecalc.validate import files, limits

SIZE_KEYS = (
    "num_hidden_layers",
    "n_layer",
    "hidden_size",
    "n_embd",
    "d_model",
    "num_attention_heads",
    "n_head",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "moe_intermediate_size",
    "n_inner",
    "vocab_size",
    "max_position_embeddings",
    "n_positions",
    "n_ctx",
    "num_local_experts",
    "num_experts",
    "num_experts_per_tok",
)


def load(path, where: str) -> dict:
    """The config as a dict (``text_config`` merged in, as multimodal models nest it)."""
    text = files.read_text(
        path,
        limit=limits.MAX_CONFIG_FILE_BYTES,
        limit_name="MAX_CONFIG_FILE_BYTES",
        kind="Hugging Face config.json",
        error=DataError,
    )
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}); give a Hugging Face config.json"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{where}: unreadable JSON ({type(exc).__name__}); give a Hugging Face config.json") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(cfg).__name__}")
    inner = cfg.get("text_config")
    if inner is not None and not isinstance(inner, dict):
        raise UsageError(f"{where}: text_config must be a JSON object")
    cfg = {**(inner or {}), **cfg}
    check(cfg, where)
    return cfg


def check(cfg: dict, where: str) -> None:
    """Each size key present (and not null) is a whole number in its range."""
    for key in SIZE_KEYS:
        value = cfg.get(key)
        if value is None:
            continue
        high = 1_000_000 if "expert" in key else limits.MAX_SHAPE_DIM
        ok = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and math.isfinite(value)
            and value == int(value)
            and 1 <= value <= high
        )
        if not ok:
            raise UsageError(f"{where}: key {key!r} = {value!r} must be a whole number in [1, {high:,}]")
