"""Calibration recipes: YAML sweep descriptions -> validated, hashable run configurations.

A recipe is a YAML mapping (read with ``yaml.safe_load`` only). Top-level keys are ``name``,
``description``, any run *setting* (the defaults), and an optional ``sweeps`` list; each sweep is
a mapping of settings that override the defaults and is expanded as a grid over its list-valued
axes (shapes x batch sizes x learning rates x budgets x seeds)::

    name: quick-cpu
    seq_len: 128                  # tokens per sequence
    schedule: cosine
    sweeps:
      - name: sizes               # N_c, alpha_N: several widths at one batch size
        shapes: [{d_model: 32, n_layer: 2}, {d_model: 64, n_layer: 3}]
        batch_size: 16            # sequences
        tokens: 2e6               # training tokens per run (PyYAML reads 1e6 as a string)
      - name: batch               # B*, alpha_B: one shape at several batch sizes
        shapes: [{d_model: 64, n_layer: 3}]
        batch_size: [4, 8, 16, 32]
        steps: 400

Every problem in a file (unknown keys, wrong types, missing budget, ...) is reported at once in
one :class:`~scalecalc.errors.RecipeError` that names the file. ``1e18``-style strings are
coerced with ``float()`` (YAML 1.1 needs a dot for floats: kyo-takano/chinchilla's
``from_config`` note), and ``1.5M``-style counts are accepted too.

The expansion, :meth:`SweepRecipe.runs`, gives one frozen :class:`RunConfig` per run, whose
``run_id`` is the first 16 hex digits of the SHA-256 of its canonical JSON. The training horizon
(steps, warmup steps) depends on the model's parameter count, which only the model knows, so
:meth:`RunConfig.horizon` takes it as an argument: the loop derives it visibly from the budget.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import site
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from scalecalc.errors import RecipeError
from scalecalc.flops import MLPS, NORMS, POSITIONS

# Porian et al. 2024 (docs/reference.md §5.4): beta2 = 0.95 is suboptimal at batch sizes <= 128
# sequences; "tuning AdamW beta2 is essential at lower batch sizes" -> 0.99 there.
SMALL_BATCH_SEQS = 128
BETA2_SMALL_BATCH = 0.99
BETA2_LARGE_BATCH = 0.95

SCHEDULES = ("constant", "cosine", "wsd")
# the architectures the tiny GPT builds: scalecalc.flops counts these and relative positions
# (Transformer-XL, for Chinchilla's shapes), which the GPT does not build
POSITIONS = tuple(p for p in POSITIONS if p != "relative")
BUDGET_KEYS = ("tokens", "flops", "steps", "tokens_per_param")
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "calibrate"  # repo checkout
# installed copies of calibrate/*.yaml (pyproject data-files: <prefix>/share/scalecalc/recipes)
INSTALLED_DIRS = tuple(
    Path(p) / "share" / "scalecalc" / "recipes" for p in dict.fromkeys((sys.prefix, site.USER_BASE or sys.prefix))
)


def beta2_rule(batch_size: int) -> float:
    """AdamW beta2 for a batch of ``batch_size`` sequences (Porian et al. 2024; docs/reference.md §5.4).

    0.99 at or below 128 sequences, 0.95 above: the paper shows beta2 = 0.95 hurts small batches.
    """
    return BETA2_SMALL_BATCH if batch_size <= SMALL_BATCH_SEQS else BETA2_LARGE_BATCH


@dataclass(frozen=True)
class Horizon:
    """The training horizon of one run, derived from its budget and the model's size.

    Attributes
    ----------
    max_steps : int
        Optimizer steps; ``round(budget_tokens / tokens_per_step)``.
    warmup_steps : int
        Linear warmup; N tokens by default (Porian et al. 2024, docs/reference.md §5.4).
    tokens_per_step : int
        ``batch_size * seq_len`` tokens.
    tokens : float
        D = max_steps * tokens_per_step, tokens.
    flops : float
        C = flops_per_token * D, FLOPs (under the run's FLOP convention).
    tokens_per_param : float
        D / N.
    """

    max_steps: int
    warmup_steps: int
    tokens_per_step: int
    tokens: float
    flops: float
    tokens_per_param: float


@dataclass(frozen=True)
class SizeRule:
    """A setting that scales with model size: ``value * (N / at_params) ** exponent``.

    N is the run's non-embedding parameter count (Kaplan's N, :func:`scalecalc.flops.param_counts`).
    A recipe writes it as a mapping, e.g. ``lr: {value: 5e-3, at_params: 148e3, exponent: -0.18}``
    (the peak learning rate falls as N^-0.18 from 5e-3 at 148K parameters). For ``batch_size`` the
    result is rounded to a whole number of sequences (at least 1).
    """

    value: float
    at_params: float
    exponent: float

    def at(self, n_params: float) -> float:
        return self.value * (n_params / self.at_params) ** self.exponent


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run (and nothing that does not, e.g. the device).

    Sizes: ``batch_size`` in sequences of ``seq_len`` tokens; budgets in tokens, FLOPs or steps.
    ``warmup_tokens = None`` means "N tokens" (Porian et al. 2024). ``vocab_size`` comes from the
    tokenizer (256 for bytes).
    """

    # model shape (nanoGPT GPTConfig names)
    n_layer: int
    n_head: int
    d_model: int
    d_ff: int | None = None  # None: the model's default (4d GELU, ~8d/3 SwiGLU)
    vocab_size: int = 256
    seq_len: int = 128
    norm: str = "layernorm"  # the model's defaults (OpenLM setup of Porian et al. 2024)
    mlp: str = "swiglu"
    pos: str = "rope"
    tied: bool = False
    # data
    data: tuple[str, ...] | None = None  # None: the default corpus (Python stdlib source)
    tokenizer: str = "bytes"  # "bytes" or "tiktoken:<encoding>"
    data_max_bytes: int | None = None  # use only the first this many bytes of the sources
    # optimisation
    batch_size: int = 16  # sequences per step
    lr: float = 3e-3  # peak learning rate
    beta1: float = 0.9
    beta2: float = 0.99  # set by beta2_rule unless the recipe gives one
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    schedule: str = "cosine"  # constant | cosine | wsd
    min_lr_frac: float = 0.1  # cosine/wsd end at this fraction of lr
    cooldown_frac: float = 0.2  # wsd: last 20% of steps decay (Hägele et al. 2024)
    warmup_tokens: float | None = None  # None: N tokens
    fixed_warmup_steps: int | None = None  # recipe key warmup_steps; overrides warmup_tokens
    # budget: exactly one kind
    budget_kind: str = "tokens"  # tokens | flops | steps | tokens_per_param
    budget_amount: float = 1e6  # in the unit of budget_kind
    flops_convention: str = "6nd"  # for budget_kind == "flops"
    # evaluation
    eval_interval: int = 100  # regular eval every this many steps (plus log-spaced ones)
    eval_points: int = 16  # log-spaced eval steps over the run
    eval_batches: int = 4  # fixed validation batches per eval
    seed: int = 0

    @property
    def run_id(self) -> str:
        """First 16 hex digits of sha256 over the canonical JSON of the config."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data"] = list(self.data) if self.data is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("data") is not None:
            kw["data"] = tuple(kw["data"])
        return cls(**kw)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def horizon(self, n_params: float, flops_per_token: float) -> Horizon:
        """Steps and warmup from the budget, N (params) and FLOPs per token.

        ``num_steps = round(target_flops / (flops_per_token * tokens_per_step))`` for a FLOP
        budget (the IsoFLOP horizon), ``round(tokens / tokens_per_step)`` for a token budget.
        """
        tps = self.tokens_per_step
        if self.budget_kind == "steps":
            steps = round(self.budget_amount)
        elif self.budget_kind == "tokens":
            steps = round(self.budget_amount / tps)
        elif self.budget_kind == "tokens_per_param":
            steps = round(self.budget_amount * n_params / tps)
        else:  # flops
            steps = round(self.budget_amount / (flops_per_token * tps))
        steps = max(int(steps), 1)
        if self.fixed_warmup_steps is not None:
            warm = self.fixed_warmup_steps
        else:
            warm_tokens = n_params if self.warmup_tokens is None else self.warmup_tokens
            warm = round(warm_tokens / tps)
        warm = int(min(max(warm, 0), steps // 2))  # never warm up past half the run
        D = float(steps * tps)
        return Horizon(steps, warm, tps, D, flops_per_token * D, D / n_params)

    def eval_steps(self, max_steps: int) -> list[int]:
        """Steps to evaluate at: step 0, ``eval_points`` log-spaced steps, every
        ``eval_interval`` steps, and the last step (so every run ends on an eval)."""
        steps = {0, max_steps}
        if self.eval_points > 0 and max_steps > 1:
            for i in range(self.eval_points):
                steps.add(int(round(max_steps ** (i / max(self.eval_points - 1, 1)))))
        if self.eval_interval > 0:
            steps.update(range(0, max_steps + 1, self.eval_interval))
        return sorted(s for s in steps if 0 <= s <= max_steps)

    def model_kwargs(self) -> dict:
        """Keyword arguments for ``scalecalc.calibration.model.GPTConfig``."""
        return dict(
            n_layer=self.n_layer,
            n_head=self.n_head,
            d_model=self.d_model,
            vocab_size=self.vocab_size,
            seq_len=self.seq_len,
            d_ff=self.d_ff,
            norm=self.norm,
            mlp=self.mlp,
            pos=self.pos,
            tied=self.tied,
        )

    def arch(self):
        """This run's model as a :class:`scalecalc.flops.Arch` (no torch needed)."""
        from scalecalc.flops import Arch

        return Arch(
            n_layer=self.n_layer,
            d_model=self.d_model,
            n_heads=self.n_head,
            head_dim=self.d_model // self.n_head,
            d_ff=self.d_ff,
            vocab=self.vocab_size,
            seq_len=self.seq_len,
            mlp=self.mlp,
            tied=self.tied,
            pos=self.pos,
            norm=self.norm,
        )

    def planned_horizon(self) -> Horizon:
        """The horizon from :mod:`scalecalc.flops` counts (what the model will report)."""
        from scalecalc.flops import param_counts, training_flops_per_token

        arch = self.arch()
        return self.horizon(param_counts(arch)["total"], training_flops_per_token(arch, self.flops_convention))

    def data_key(self) -> tuple:
        """Runs with equal keys train on the same token arrays."""
        return (self.data, self.tokenizer, self.data_max_bytes)

    def label(self) -> str:
        return (
            f"d{self.d_model}-l{self.n_layer}-b{self.batch_size}-lr{self.lr:g}"
            f"-{self.budget_kind}{self.budget_amount:g}-s{self.seed}"
        )


@dataclass(frozen=True)
class Sweep:
    """One grid of a recipe: settings after merging the recipe defaults."""

    name: str
    settings: dict = field(hash=False)


@dataclass(frozen=True)
class SweepRecipe:
    """A validated recipe. ``runs()`` expands it into run configurations (duplicates removed)."""

    name: str
    description: str
    sweeps: tuple[Sweep, ...]
    path: str | None = None
    text: str | None = None

    def runs(self) -> list[RunConfig]:
        out: dict[str, RunConfig] = {}
        for sweep in self.sweeps:
            for cfg in _expand(sweep.settings):
                out.setdefault(cfg.run_id, cfg)
        return list(out.values())

    def groups(self) -> dict[str, str]:
        """run_id -> name of the (first) sweep that produces it."""
        out: dict[str, str] = {}
        for sweep in self.sweeps:
            for cfg in _expand(sweep.settings):
                out.setdefault(cfg.run_id, sweep.name)
        return out

    def with_overrides(self, **settings) -> SweepRecipe:
        """The same recipe with settings forced on every sweep (e.g. ``data``, ``tokenizer``
        from the command line). ``None`` values are ignored."""
        settings = {k: v for k, v in settings.items() if v is not None}
        sweeps = tuple(Sweep(s.name, {**s.settings, **settings}) for s in self.sweeps)
        errors: list[str] = []
        for s in sweeps:
            _check_sweep(s.settings, f"sweep {s.name!r}", errors)
        if errors:
            raise RecipeError(f"{self.path or self.name}: " + "; ".join(errors))
        return replace(self, sweeps=sweeps)


# --------------------------------------------------------------------------------------------
# Schema: setting name -> (kind, is a grid axis). Kinds: int, float, bool, str, choice tuple.

_SETTINGS: dict[str, tuple[Any, bool]] = {
    "shapes": ("shapes", True),
    "widths": ("int", True),
    "depths": ("int", True),
    "params": ("float", True),
    "aspect_ratio": ("float", False),  # d_model / n_layer for target-N shapes
    "head_dim": ("int", False),
    "n_head": ("int", False),
    "d_ff": ("int", False),
    "vocab_size": ("int", False),
    "seq_len": ("int", False),
    "norm": (NORMS, False),
    "mlp": (MLPS, False),
    "pos": (POSITIONS, False),
    "tied": ("bool", False),
    "data": ("paths", False),
    "tokenizer": ("str", False),
    "data_max_bytes": ("int", False),
    "batch_size": ("int_or_rule", True),
    "lr": ("float_or_rule", True),
    "beta1": ("float", False),
    "beta2": ("float", False),
    "weight_decay": ("float", False),
    "grad_clip": ("float", False),
    "schedule": (SCHEDULES, True),
    "min_lr_frac": ("float", False),
    "cooldown_frac": ("float", False),
    "warmup_tokens": ("float", False),
    "warmup_steps": ("int", False),
    "tokens": ("float", True),
    "flops": ("float", True),
    "steps": ("int", True),
    "tokens_per_param": ("float", True),
    "flops_convention": ("str", False),
    "eval_interval": ("int", False),
    "eval_points": ("int", False),
    "eval_batches": ("int", False),
    "seed": ("int", True),
    # seeds: N runs every configuration with seeds seed, seed+1, ..., seed+N-1 (replicates: the
    # estimator's seed bootstrap and the report's spread read them); the seed is part of run ids
    "seeds": ("int", False),
}
_TOP = {"name", "description", "sweeps"}
_RULE_KEYS = ("value", "at_params", "exponent")
_SHAPE_KEYS = {"d_model", "n_layer", "n_head", "d_ff"}
_NONNEG = {
    "weight_decay",
    "warmup_tokens",
    "warmup_steps",
    "min_lr_frac",
    "cooldown_frac",
    "eval_interval",
    "eval_points",
    "seed",
    "grad_clip",
}
_DEFAULTS = {"head_dim": 16, "aspect_ratio": 32.0, "seed": [0]}


def load_recipe(path: str | Path) -> SweepRecipe:
    """Read and validate a recipe file (or a built-in name such as ``quick-cpu``).

    Raises
    ------
    RecipeError
        Naming the file and listing every invalid, missing or unknown key at once.
    """
    from scalecalc.validate import files, limits, yamlfile

    file = resolve_recipe_path(path)
    text = files.read_text(
        file,
        limit=limits.MAX_RECIPE_FILE_BYTES,
        limit_name="MAX_RECIPE_FILE_BYTES",
        kind="recipe YAML file",
        error=RecipeError,
    )
    raw = yamlfile.load(text, str(file), error=RecipeError)  # safe loader, alias and node limits
    recipe = parse_recipe(raw, where=str(file), text=text)
    from scalecalc.validate.calibration import check_recipe

    check_recipe(recipe, str(file))  # a model too large to train is refused by estimate, not by OOM
    return recipe


def resolve_recipe_path(path: str | Path) -> Path:
    """A path to a recipe file, or a built-in name (``quick-cpu``) looked up in the repository's
    ``calibrate/`` folder, then where pip installed them (``<prefix>/share/scalecalc/recipes``)."""
    p = Path(path)
    if p.is_file():
        return p
    name = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    if p.parent == Path("."):
        for folder in (BUILTIN_DIR, *INSTALLED_DIRS):
            if (folder / name).is_file():
                return folder / name
    raise RecipeError(
        f"RECIPE: no recipe file {str(path)!r}; give a path or a built-in name "
        f"({', '.join(builtin_recipes()) or 'none installed'})"
    )


def builtin_recipes() -> list[str]:
    names: set[str] = set()
    for folder in (BUILTIN_DIR, *INSTALLED_DIRS):
        if folder.is_dir():
            names.update(f.stem for f in folder.glob("*.yaml"))
    return sorted(names)


def parse_recipe(raw: Any, *, where: str = "recipe", text: str | None = None) -> SweepRecipe:
    """Validate a recipe mapping (already read from YAML); see :func:`load_recipe`."""
    errors: list[str] = []
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: a recipe must be a YAML mapping of settings, got {type(raw).__name__}")
    _unknown(raw, set(_SETTINGS) | _TOP, "top level", errors)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        errors.append("missing key 'name' (a short name for the recipe)")
        name = Path(where).stem
    description = raw.get("description") or ""
    defaults = {**_DEFAULTS, **{k: v for k, v in raw.items() if k in _SETTINGS}}
    raw_sweeps = raw.get("sweeps", [{}])
    if not isinstance(raw_sweeps, list) or not raw_sweeps:
        errors.append("'sweeps' must be a non-empty list of mappings")
        raw_sweeps = []
    sweeps = []
    for i, item in enumerate(raw_sweeps):
        label = f"sweeps[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{label}: must be a mapping of settings")
            continue
        sname = str(item.get("name", f"sweep{i}" if len(raw_sweeps) > 1 else name))
        label = f"sweep {sname!r}"
        _unknown(item, set(_SETTINGS) | {"name"}, label, errors)
        merged = {**defaults, **{k: v for k, v in item.items() if k != "name"}}
        settings = _check_sweep(merged, label, errors)
        sweeps.append(Sweep(sname, settings))
    if errors:
        raise RecipeError(f"{where}: {len(errors)} problem(s): " + "; ".join(errors))
    return SweepRecipe(name, str(description).strip(), tuple(sweeps), path=where, text=text)


def _unknown(d: dict, allowed: set, label: str, errors: list[str]) -> None:
    for key in d:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{label}: unknown key {key!r}{hint}")


def _check_sweep(s: dict, label: str, errors: list[str]) -> dict:
    """Coerce and check every setting of one merged sweep; append problems to ``errors``."""
    out: dict = {}
    for key, value in s.items():
        if key not in _SETTINGS:
            continue
        kind, axis = _SETTINGS[key]
        values = value if (axis and isinstance(value, list) and kind != "paths") else [value]
        if kind == "shapes":
            values = value if isinstance(value, list) else [value]
        if axis and not values:
            errors.append(f"{label}: {key!r} is an empty list")
            continue
        coerced = [_coerce(v, kind, f"{label}: {key}", errors) for v in values]
        if key not in _NONNEG and kind in ("int", "float", "int_or_rule", "float_or_rule"):
            for v in coerced:
                if isinstance(v, (int, float)) and v <= 0:
                    errors.append(f"{label}: {key} must be > 0, got {v!r}")
        elif key in _NONNEG:
            for v in coerced:
                if v is not None and v < 0:
                    errors.append(f"{label}: {key} must be >= 0, got {v!r}")
        out[key] = coerced if axis else coerced[0]
    shape_specs = [k for k in ("shapes", "widths", "params") if k in out]
    if len(shape_specs) != 1:
        errors.append(
            f"{label}: give exactly one of 'shapes', 'widths' (with 'depths') or "
            f"'params' (target N with a shape rule); got {shape_specs or 'none'}"
        )
    if "widths" in out and "depths" not in out:
        errors.append(f"{label}: 'widths' needs 'depths' (the grid is widths x depths)")
    budgets = [k for k in BUDGET_KEYS if k in out]
    if len(budgets) != 1:
        errors.append(f"{label}: give exactly one budget of {', '.join(BUDGET_KEYS)}; got {budgets or 'none'}")
    if "flops_convention" in out:
        from scalecalc.flops import CONVENTIONS

        if out["flops_convention"] not in CONVENTIONS:
            errors.append(
                f"{label}: flops_convention {out['flops_convention']!r} is not one of {', '.join(CONVENTIONS)}"
            )
    for key in ("batch_size", "lr"):
        if key not in out:
            errors.append(f"{label}: missing key {key!r}")
    if "seeds" in out:
        seeds = out.pop("seeds")
        if len(out.get("seed", [0])) > 1:
            errors.append(f"{label}: give either 'seeds' (a count) or a list of 'seed', not both")
        else:
            first = out.get("seed", [0])[0]
            out["seed"] = [first + i for i in range(seeds)]
    for key in ("beta1", "beta2", "min_lr_frac", "cooldown_frac"):
        if key in out and out[key] is not None and not (0 <= out[key] < 1):
            errors.append(f"{label}: {key} must be in [0, 1), got {out[key]!r}")
    return out


def _coerce(v: Any, kind: Any, label: str, errors: list[str]) -> Any:
    try:
        if isinstance(kind, tuple):
            if v not in kind:
                raise ValueError(f"must be one of {', '.join(kind)}")
            return v
        if kind in ("float", "int"):
            return _coerce_number(v, whole=kind == "int")
        if kind == "bool":
            if not isinstance(v, bool):
                raise ValueError("must be true or false")
            return v
        if kind == "str":
            if not isinstance(v, str):
                raise ValueError("must be a string")
            return v
        if kind == "paths":
            if v is None:
                return None
            items = v if isinstance(v, list) else [v]
            if not all(isinstance(x, str) for x in items):
                raise ValueError("must be a path or a list of paths")
            return tuple(items)
        if kind == "shapes":
            return _shape(v)
        if kind in ("float_or_rule", "int_or_rule"):
            if isinstance(v, dict):
                return _size_rule(v)
            return _coerce_number(v, whole=kind == "int_or_rule")
    except (ValueError, TypeError) as exc:
        errors.append(f"{label}: {v!r} {exc}")
        return None
    raise AssertionError(kind)


def _coerce_number(v: Any, *, whole: bool) -> float | int:
    x = _number(v)
    if not whole:
        return x
    if x != int(x):
        raise ValueError("must be a whole number")
    return int(x)


def _size_rule(v: dict) -> SizeRule:
    if set(v) != set(_RULE_KEYS):
        raise ValueError(
            f"a size rule needs exactly the keys {', '.join(_RULE_KEYS)} "
            "(e.g. {value: 5e-3, at_params: 148e3, exponent: -0.18})"
        )
    rule = SizeRule(**{k: _number(v[k]) for k in _RULE_KEYS})
    if rule.value <= 0 or rule.at_params <= 0:
        raise ValueError("value and at_params must be > 0")
    return rule


def _number(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("must be a number")
    if isinstance(v, (int, float)):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v)  # PyYAML reads 1e18 (no dot) as a string
        except ValueError:
            from scalecalc.errors import UsageError
            from scalecalc.quantities import parse_number

            try:
                x = parse_number(v, "value", positive=False)  # 1.5M, 70K
            except UsageError:
                raise ValueError("is not a number (e.g. 3e-3, 1e18, 1.5M)") from None
    else:
        raise ValueError("must be a number")
    if not math.isfinite(x):
        raise ValueError("must be finite")
    return x


def _shape(v: Any) -> dict:
    if not isinstance(v, dict):
        raise ValueError("must be a mapping like {d_model: 64, n_layer: 2}")
    bad = set(v) - _SHAPE_KEYS
    if bad:
        raise ValueError(f"has unknown key(s) {sorted(bad)}; use {sorted(_SHAPE_KEYS)}")
    if "d_model" not in v or "n_layer" not in v:
        raise ValueError("needs d_model and n_layer")
    out = {}
    for k, x in v.items():
        x = _number(x)
        if x != int(x) or x <= 0:
            raise ValueError(f"{k} must be a positive whole number")
        out[k] = int(x)
    return out


# --------------------------------------------------------------------------------------------
# Expansion


# Recipe settings copied into RunConfig as they are; the others are translated by _expand
# (shape, budget, data paths, warmup_steps, beta2 and the size rules).
_COPIED = (
    "d_ff",
    "seq_len",
    "norm",
    "mlp",
    "pos",
    "tied",
    "tokenizer",
    "data_max_bytes",
    "beta1",
    "weight_decay",
    "grad_clip",
    "min_lr_frac",
    "cooldown_frac",
    "warmup_tokens",
    "flops_convention",
    "eval_interval",
    "eval_points",
    "eval_batches",
)
_RUN_DEFAULTS = {f.name: f.default for f in fields(RunConfig)}  # the one place defaults live


def _expand(s: dict) -> list[RunConfig]:
    """One sweep's grid: shapes x batch sizes x learning rates x budgets x schedules x seeds.

    Settings the sweep leaves out take :class:`RunConfig`'s defaults. Size rules (``lr``,
    ``batch_size`` given as ``{value, at_params, exponent}``) are resolved with each shape's
    non-embedding parameter count; beta2 follows :func:`beta2_rule` of the resolved batch size
    unless the recipe sets it.
    """
    budget_kind = next(k for k in BUDGET_KEYS if k in s)
    tokenizer = s.get("tokenizer", _RUN_DEFAULTS["tokenizer"])
    vocab = int(s.get("vocab_size") or _vocab_size(tokenizer))
    copied = {k: s[k] for k in _COPIED if k in s}
    schedules = s.get("schedule", [_RUN_DEFAULTS["schedule"]])
    out = []
    for shape, bs, lr, budget, schedule, seed in itertools.product(
        _shapes(s, vocab), s["batch_size"], s["lr"], s[budget_kind], schedules, s["seed"]
    ):
        cfg = RunConfig(
            **{**copied, "d_ff": shape.get("d_ff", copied.get("d_ff"))},
            n_layer=shape["n_layer"],
            d_model=shape["d_model"],
            n_head=_heads(shape, s),
            vocab_size=vocab,
            data=_abs_paths(s.get("data")),
            fixed_warmup_steps=s.get("warmup_steps"),
            budget_kind=budget_kind,
            budget_amount=float(budget),
            schedule=schedule,
            seed=seed,
        )
        out.append(_resolve_rules(cfg, bs, lr, s.get("beta2")))
    return out


def _heads(shape: dict, s: dict) -> int:
    d = shape["d_model"]
    n_head = shape.get("n_head") or s.get("n_head") or max(1, d // s["head_dim"])
    if d % n_head or (s.get("pos", _RUN_DEFAULTS["pos"]) == "rope" and (d // n_head) % 2):
        raise RecipeError(
            f"shape d_model={d}: must split into n_head={n_head} heads (of "
            f"even width for rope); set n_head or head_dim to fit d_model"
        )
    return n_head


def _resolve_rules(cfg: RunConfig, batch_size, lr, beta2) -> RunConfig:
    """``cfg`` with its batch size and learning rate (numbers or :class:`SizeRule`) resolved."""
    n = None
    if isinstance(batch_size, SizeRule) or isinstance(lr, SizeRule):
        from scalecalc.flops import param_counts

        n = param_counts(cfg.arch())["non_embedding"]
    if isinstance(batch_size, SizeRule):
        batch_size = max(1, round(batch_size.at(n)))
    if isinstance(lr, SizeRule):
        lr = lr.at(n)
    return replace(
        cfg, batch_size=int(batch_size), lr=float(lr), beta2=beta2 if beta2 is not None else beta2_rule(batch_size)
    )


def _abs_paths(paths):
    if not paths:
        return None
    return tuple(p if any(c in p for c in "*?[") else str(Path(p).expanduser().resolve()) for p in paths)


# n_vocab of the common tiktoken encodings, so a recipe loads (and hashes) without tiktoken
_TIKTOKEN_VOCAB = {"gpt2": 50257, "r50k_base": 50257, "p50k_base": 50281, "cl100k_base": 100277, "o200k_base": 200019}


def _vocab_size(tokenizer: str) -> int:
    if tokenizer == "bytes":
        return 256
    if tokenizer.startswith("tiktoken:") and tokenizer[9:] in _TIKTOKEN_VOCAB:
        return _TIKTOKEN_VOCAB[tokenizer[9:]]
    try:
        import tiktoken  # optional

        return int(tiktoken.get_encoding(tokenizer.split(":", 1)[-1]).n_vocab)
    except Exception:
        raise RecipeError(
            f"tokenizer {tokenizer!r}: unknown or tiktoken not installed; "
            f"use 'bytes', 'tiktoken:<encoding>' or set vocab_size"
        ) from None


def _shapes(s: dict, vocab: int) -> list[dict]:
    if "shapes" in s:
        return s["shapes"]
    if "widths" in s:
        return [{"d_model": w, "n_layer": l} for w in s["widths"] for l in s["depths"]]
    return [
        tiny_shape(
            n,
            s["aspect_ratio"],
            s["head_dim"],
            vocab=vocab,
            seq_len=s.get("seq_len", _RUN_DEFAULTS["seq_len"]),
            mlp=s.get("mlp", _RUN_DEFAULTS["mlp"]),
            d_ff=s.get("d_ff"),
        )
        for n in s["params"]
    ]


def tiny_shape(
    n_params: float,
    aspect_ratio: float = 32.0,
    head_dim: int = 16,
    *,
    vocab: int = 256,
    seq_len: int = 128,
    mlp: str = "swiglu",
    d_ff: int | None = None,
) -> dict:
    """A (d_model, n_layer) with about ``n_params`` non-embedding parameters (Kaplan's N, the N
    of L(N) = (N_c/N)^alpha_N) and d_model / n_layer close to ``aspect_ratio``.

    :func:`scalecalc.flops.search_shape` with the calibration's settings: widths are multiples of
    ``head_dim`` (up to 64 heads) and the tolerance is 10% (one layer of a tiny model is a large
    step in N); the planner's shape block searches the same way within 2%.
    """
    from scalecalc.flops import Arch, search_shape

    def make(d_model: int, n_layer: int) -> Arch:
        return Arch(
            n_layer=n_layer,
            d_model=d_model,
            n_heads=d_model // head_dim,
            head_dim=head_dim,
            d_ff=d_ff,
            vocab=vocab,
            seq_len=seq_len,
            mlp=mlp,
        )

    arch, _ = search_shape(
        n_params,
        "non_embedding",
        make,
        range(head_dim, 64 * head_dim + 1, head_dim),
        aspect_ratio=aspect_ratio,
        tolerance=0.10,
    )
    return {"d_model": arch.d_model, "n_layer": arch.n_layer}
