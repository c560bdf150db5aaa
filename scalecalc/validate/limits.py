"""Every limit on user input, named in one place.

A limit is what stops one typed line, file or pipe from making scalecalc run away (time or
memory); each is far above what a real input needs, and the error that enforces it names the
limit and its value. The README's "Input limits" table is generated from :data:`LIMITS`
(``tests/test_validate.py`` checks that it is current).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """One named limit: its value, its unit and what it bounds (one README table row)."""

    name: str
    value: float
    unit: str
    what: str


# Budgets: `plan --compute 1e10:1e30:10000000` took 5 minutes and 15 GB; a million rows with
# --brief take about a second of solving and a few seconds of printing.
MAX_BUDGETS = 1_000_000
# Law files: the largest real one (a fit with 1,000 bootstrap replicates of 5 constants) is ~150 kB.
MAX_LAW_FILE_BYTES = 2 * 1024 * 1024
# YAML aliases (`*name`): a "billion laughs" document expands exponentially through them; no real
# law file or recipe uses more than a handful.
MAX_YAML_ALIASES = 100
# YAML nodes after composing (scalars, lists, maps): bounds the parsed size of any YAML input.
MAX_YAML_NODES = 200_000
# Formulas (scalecalc.expr): real laws are under 200 characters and 15 levels deep.
MAX_FORMULA_CHARS = 2000
MAX_FORMULA_DEPTH = 100
# Bootstrap replicates per constant kept in a law file (`fit` writes at most 1,000).
MAX_BOOTSTRAP_REPLICATES = 10_000
# Symbolic derivation (`formula`, sympy): some formulas make sympy's solver run for ever.
MAX_SYMBOLIC_SECONDS = 10.0
# Recipes (calibration) and Hugging Face config.json files.
MAX_RECIPE_FILE_BYTES = 1024 * 1024
MAX_CONFIG_FILE_BYTES = 1024 * 1024
# Run files for `fit` (CSV, TSV, JSONL) and stdin for `--compute -` / `fit -`.
MAX_RUNS_FILE_BYTES = 64 * 1024 * 1024
MAX_STDIN_BYTES = 64 * 1024 * 1024
# Numbers: option values beyond these are typing mistakes, and overflow float arithmetic.
MAX_ASPECT_RATIO = 1e5  # d_model / n_layer; real models are 30-300
MAX_GPUS = 10_000_000
MAX_SHAPE_DIM = 10_000_000  # heads, layers, d_model, vocab, seq_len
# Calibration: the memory estimate of one training run (weights, gradients, AdamW states and
# activations) must fit in this many bytes before a model is built.
MAX_CALIBRATION_MEMORY_BYTES = 512 * 1024**3


LIMITS: tuple[Limit, ...] = (
    Limit(
        "MAX_BUDGETS",
        MAX_BUDGETS,
        "values",
        "budgets in one call (all --compute/--params/... values, ranges and stdin together)",
    ),
    Limit("MAX_ASPECT_RATIO", MAX_ASPECT_RATIO, "d_model / n_layer", "largest --aspect-ratio"),
    Limit("MAX_GPUS", MAX_GPUS, "GPUs", "largest --gpus"),
    Limit("MAX_SHAPE_DIM", MAX_SHAPE_DIM, "each", "largest --vocab, --seq-len, --heads, --layers, --d-model"),
    Limit("MAX_LAW_FILE_BYTES", MAX_LAW_FILE_BYTES, "bytes", "size of a law YAML file"),
    Limit(
        "MAX_YAML_ALIASES",
        MAX_YAML_ALIASES,
        "aliases",
        "YAML aliases (*name) in a law file or recipe (stops alias-expansion bombs)",
    ),
    Limit("MAX_YAML_NODES", MAX_YAML_NODES, "nodes", "YAML nodes in a law file or recipe"),
    Limit("MAX_FORMULA_CHARS", MAX_FORMULA_CHARS, "characters", "length of one formula"),
    Limit("MAX_FORMULA_DEPTH", MAX_FORMULA_DEPTH, "levels", "nesting of one formula's syntax tree"),
    Limit(
        "MAX_BOOTSTRAP_REPLICATES",
        MAX_BOOTSTRAP_REPLICATES,
        "replicates",
        "bootstrap replicates per constant in a law file",
    ),
    Limit(
        "MAX_SYMBOLIC_SECONDS", MAX_SYMBOLIC_SECONDS, "seconds", "symbolic derivation of a law's optimum (`formula`)"
    ),
    Limit("MAX_RECIPE_FILE_BYTES", MAX_RECIPE_FILE_BYTES, "bytes", "size of a calibration recipe"),
    Limit("MAX_CONFIG_FILE_BYTES", MAX_CONFIG_FILE_BYTES, "bytes", "size of a Hugging Face config.json"),
    Limit("MAX_RUNS_FILE_BYTES", MAX_RUNS_FILE_BYTES, "bytes", "size of a runs file for `fit` (CSV, TSV, JSONL)"),
    Limit("MAX_STDIN_BYTES", MAX_STDIN_BYTES, "bytes", "standard input (`--compute -`, `fit -`)"),
    Limit(
        "MAX_CALIBRATION_MEMORY_BYTES",
        MAX_CALIBRATION_MEMORY_BYTES,
        "bytes",
        "estimated training memory of one calibration model",
    ),
)


def markdown_table() -> str:
    """The README's "Input limits" table (kept current by a test)."""
    rows = ["| Limit | Value | Unit | Bounds |", "|---|---:|---|---|"]
    for limit in LIMITS:
        value = f"{limit.value:,.0f}" if limit.value == int(limit.value) and limit.value < 1e15 else f"{limit.value:g}"
        rows.append(f"| `{limit.name}` | {value} | {limit.unit} | {limit.what} |")
    return "\n".join(rows)
