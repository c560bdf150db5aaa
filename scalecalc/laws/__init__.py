"""Scaling laws as data: one YAML file per law, loaded into a frozen :class:`Law`.

The file format is documented in the README ("Law files") and docs/architecture.md. Files are read with
``yaml.safe_load`` only, and every formula goes through :func:`scalecalc.expr.parse`, a
whitelisted AST walk: nothing in a law file is ever passed to ``eval``/``exec``/``sympify``.
Errors name the file, the line and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalecalc.errors import LawFileError, UnknownName
from scalecalc.expr import Expr, parse
from scalecalc.laws.lawfile import name_problem

__all__ = ["Law", "load_law", "builtin_names", "DEFAULT_LAW"]

DEFAULT_LAW = "besiroglu2024"
_DIR = Path(__file__).parent
_FORMULA_KEYS = ("loss", "params", "tokens", "critical_batch")
_PARAMS_KINDS = ("total", "non_embedding", "head", "flops_per_token")
_KNOWN = {
    "name",
    "title",
    "source",
    "form",
    "loss",
    "params",
    "tokens",
    "critical_batch",
    "constants",
    "stderr",
    "bootstrap",
    "flops",
    "params_kind",
    "fitted_range",
    "shape",
    "hyperparameters",
    "warnings",
    "provenance",
    "define",
    "requires",
    "correction_path",
    "correction_budget",
    "notes",
}
_VARIABLES = {"N", "D", "C", "L", "U"}  # symbols a formula may use besides constants and defines
# The built-in laws' YAML, pre-parsed (`python -m scalecalc.laws` rewrites it; a test keeps it
# current): a plain `plan` then never imports yaml, which alone costs ~16 ms of start-up.
_COMPILED = _DIR / "builtin.json"


@dataclass(frozen=True)
class Law:
    """A scaling law: formulas over N (params), D (tokens), C (FLOPs), L (loss), U (unique tokens).

    Attributes
    ----------
    loss : Expr or None
        L(N, D) in nats/token; the planner derives the optimum under the FLOP convention.
    params, tokens : Expr or None
        N*(C) or D*(C) given directly (allocation laws, e.g. Llama 3's D* = A C^alpha).
    flops : str
        The FLOP convention the law was fitted under (``scalecalc.flops.CONVENTIONS``).
    params_kind : str
        What N counts: ``total``, ``non_embedding``, ``head`` or ``flops_per_token`` (DeepSeek's M).
    bootstrap : dict of arrays
        Replicates of the constants (from ``scalecalc fit``); the planner turns them into intervals.
    """

    name: str
    title: str
    source: str
    form: str
    flops: str
    params_kind: str
    constants: Mapping[str, float]
    loss: Expr | None = None
    params: Expr | None = None
    tokens: Expr | None = None
    critical_batch: Expr | None = None
    define: tuple[tuple[str, Expr], ...] = ()
    hyperparameters: Mapping[str, Expr] = field(default_factory=dict)
    stderr: Mapping[str, float] = field(default_factory=dict)
    bootstrap: Mapping[str, np.ndarray] = field(default_factory=dict)
    fitted_range: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    shape: Mapping[str, float] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def has_loss(self) -> bool:
        return self.loss is not None

    def environment(self, constants: Mapping[str, Any] | None = None, **variables) -> dict:
        """Constants (or one bootstrap replicate of them) + variables + the law's definitions."""
        env = dict(self.constants if constants is None else constants)
        env.update(variables)
        for name, expr in self.define:
            if expr.symbols <= env.keys():  # skip definitions of variables this call lacks (e.g. C)
                env[name] = expr(**{k: env[k] for k in expr.symbols})
        return env

    def evaluate(self, which: str, constants: Mapping[str, Any] | None = None, **variables):
        """Evaluate one of the law's formulas (``loss``, ``params``, ``tokens``, ...) with numpy."""
        expr = getattr(self, which)
        env = self.environment(constants, **variables)
        missing = sorted(s for s in expr.symbols if s not in env)
        if missing:
            raise LawFileError(f"law {self.name}: {which} needs {', '.join(missing)}")
        return expr(**{k: env[k] for k in expr.symbols})

    def hyperparameter(self, which: str, constants=None, **variables):
        expr = self.hyperparameters[which]
        env = self.environment(constants, **variables)
        return expr(**{k: env[k] for k in expr.symbols if k in env})

    def replicates(self, limit: int = 1000) -> list[dict]:
        """Bootstrap replicates as constant dicts (constants absent from the bootstrap are fixed)."""
        if not self.bootstrap:
            return []
        count = min(len(v) for v in self.bootstrap.values())
        take = np.linspace(0, count - 1, min(count, limit)).astype(int)
        return [{**self.constants, **{k: float(v[i]) for k, v in self.bootstrap.items()}} for i in take]


def builtin_names() -> list[str]:
    """Names of the laws shipped in ``scalecalc/laws/`` (file stems)."""
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


def load_law(name_or_path: str | Path, option: str = "--law") -> Law:
    """Load a built-in law by name, or a user's law file by path.

    Raises :class:`UnknownName` for an unknown built-in name and :class:`LawFileError` (with the
    file and line) for a malformed or unsafe file.
    """
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in text:
        if not path.is_file():
            raise LawFileError(
                f"{option}: law file {text} does not exist; give a path to a YAML law file or a built-in name"
            )
        return _load_file(path, option)
    builtin = _DIR / f"{text.lower()}.yaml"
    if not builtin.is_file():
        raise UnknownName("law", text, builtin_names(), option)
    compiled = _compiled().get(builtin.stem)
    if compiled is not None:
        return _build(compiled, _Source(builtin, None))
    return _load_file(builtin, option)


def _compiled() -> dict:
    import json

    try:
        return json.loads(_COMPILED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def compile_builtins() -> dict:
    """Parse every built-in YAML law (safe loader) into the mapping stored in builtin.json."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return {p.stem: yaml.load(p.read_text(encoding="utf-8"), Loader=loader) for p in sorted(_DIR.glob("*.yaml"))}


def _load_file(path: Path, option: str) -> Law:
    from scalecalc.validate import files, limits, yamlfile

    raw = files.read_text(
        path, limit=limits.MAX_LAW_FILE_BYTES, limit_name="MAX_LAW_FILE_BYTES", kind="law YAML file", error=LawFileError
    )
    data = yamlfile.load(raw, str(path), error=LawFileError)
    if not isinstance(data, dict):
        raise LawFileError(f"{path}: a law file must be a YAML mapping with name, source and formulas")
    law = _build(data, _Source(path, raw))
    from scalecalc.validate.laws import check_law

    check_law(law, _Source(path, raw).where)
    return law


class _Source:
    """Finds the line of a key in the YAML text, for error messages (composed only on error)."""

    def __init__(self, path: Path, text: str | None):
        self.path, self.text = path, text

    def where(self, *keys: str) -> str:
        if self.text is None:  # a pre-parsed built-in: no text to locate lines in
            return str(self.path)
        try:
            import yaml

            node = yaml.compose(self.text, Loader=yaml.SafeLoader)
            line = node.start_mark.line
            for key in keys:
                for k, v in node.value:
                    if k.value == key:
                        line, node = k.start_mark.line, v
                        break
                else:
                    break
            return f"{self.path} line {line + 1}"
        except Exception:  # the location is a courtesy; the reason is what matters
            return str(self.path)


def _build(data: dict, src: _Source) -> Law:
    unknown = sorted(set(map(str, data)) - _KNOWN)
    if unknown:
        raise LawFileError(
            f"{src.where(unknown[0])}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(_KNOWN))}"
        )
    for key in ("name", "source"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise LawFileError(f"{src.where(key)}: missing or empty {key!r}; every law needs a name and a source")
    problem = name_problem(data["name"])
    if problem:
        raise LawFileError(f"{src.where('name')}: name {problem}")
    constants = _numbers(data.get("constants") or {}, "constants", src)
    formulas = {k: _formula(data[k], src, k) for k in _FORMULA_KEYS if data.get(k) is not None}
    if not any(k in formulas for k in ("loss", "params", "tokens")):
        raise LawFileError(
            f"{src.where('name')}: a law needs a loss (L(N, D)) or an allocation (params or tokens as functions of C)"
        )
    define = tuple((str(k), _formula(v, src, "define", str(k))) for k, v in (data.get("define") or {}).items())
    hparams = {
        str(k): _formula(v, src, "hyperparameters", str(k)) for k, v in (data.get("hyperparameters") or {}).items()
    }
    _check_symbols(constants, formulas, define, hparams, src)
    kind = data.get("params_kind") or ("non_embedding" if data.get("flops") == "kaplan" else "total")
    if kind not in _PARAMS_KINDS:
        raise LawFileError(
            f"{src.where('params_kind')}: params_kind {kind!r} must be one of {', '.join(_PARAMS_KINDS)}"
        )
    return Law(
        name=data["name"],
        title=str(data.get("title") or data["name"]),
        source=data["source"].strip(),
        form=_form(data.get("form"), formulas, constants, src),
        flops=_convention(data.get("flops", "6nd"), src),
        params_kind=kind,
        constants=constants,
        define=define,
        hyperparameters=hparams,
        **formulas,
        stderr=_numbers(data.get("stderr") or {}, "stderr", src),
        bootstrap=_bootstrap(data.get("bootstrap"), src),
        fitted_range=_ranges(data.get("fitted_range") or {}, src),
        shape=_numbers(data.get("shape") or {}, "shape", src),
        requires=_strings(data.get("requires"), "requires", src),
        warnings=_strings(data.get("warnings"), "warnings", src),
        provenance=_mapping(data.get("provenance"), "provenance", src),
        extra={k: data[k] for k in ("correction_path", "correction_budget", "notes") if k in data},
        path=str(src.path),
    )


_CHINCHILLA_CONSTANTS = ("A", "B", "alpha", "beta")


def _form(form: Any, formulas: dict, constants: dict, src: _Source) -> str:
    """The law's form. ``chinchilla`` (the closed-form optimum of Hoffmann et al. 2022 eq. 4,
    docs/reference.md) needs the constants A, B, alpha and beta; any other loss is solved
    numerically (form ``custom``)."""
    if form is not None and not isinstance(form, str):
        raise LawFileError(f"{src.where('form')}: form must be a word such as chinchilla or custom")
    if "loss" not in formulas:
        return form or "allocation"
    has = all(k in constants for k in _CHINCHILLA_CONSTANTS)
    if form == "chinchilla" and not has:
        raise LawFileError(
            f"{src.where('form')}: form chinchilla needs the constants {', '.join(_CHINCHILLA_CONSTANTS)}; "
            "add them or drop the form line (other losses are solved numerically)"
        )
    return form or ("chinchilla" if has else "custom")


def _strings(value: Any, key: str, src: _Source) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise LawFileError(f"{src.where(key)}: {key} must be a list of strings")
    return tuple(str(v) for v in value)


def _mapping(value: Any, key: str, src: _Source) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LawFileError(f"{src.where(key)}: {key} must be a mapping")
    return value


def _formula(text: Any, src: _Source, *keys: str) -> Expr:
    where = src.where(*keys)
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        raise LawFileError(f"{where}: {'.'.join(keys)} must be a formula string")
    return parse(str(text), where=f"{where} ({'.'.join(keys)})")


def _numbers(mapping: Any, key: str, src: _Source) -> dict[str, float]:
    if not isinstance(mapping, dict):
        raise LawFileError(f"{src.where(key)}: {key} must be a mapping of name: number")
    out = {}
    for name, value in mapping.items():
        try:
            out[str(name)] = float(value)  # PyYAML reads 1e18 (no dot) as a string: coerce
        except (TypeError, ValueError, OverflowError):
            raise LawFileError(f"{src.where(key, str(name))}: {key}.{name} = {value!r} is not a number") from None
        if not np.isfinite(out[str(name)]):
            raise LawFileError(f"{src.where(key, str(name))}: {key}.{name} must be finite")
    return out


def _bootstrap(data: Any, src: _Source) -> dict[str, np.ndarray]:
    if not data:
        return {}
    if not isinstance(data, dict):
        raise LawFileError(f"{src.where('bootstrap')}: bootstrap must map each constant to a list of replicates")
    from scalecalc.validate.limits import MAX_BOOTSTRAP_REPLICATES

    out = {}
    for name, values in data.items():
        if isinstance(values, list) and len(values) > MAX_BOOTSTRAP_REPLICATES:
            raise LawFileError(
                f"{src.where('bootstrap', str(name))}: bootstrap.{name} has {len(values):,} replicates, "
                f"more than the limit of {MAX_BOOTSTRAP_REPLICATES:,} (MAX_BOOTSTRAP_REPLICATES); keep fewer"
            )
        try:
            out[str(name)] = np.asarray(values, dtype=float).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise LawFileError(
                f"{src.where('bootstrap', str(name))}: bootstrap.{name} must be a list of numbers"
            ) from None
        if not np.all(np.isfinite(out[str(name)])):
            raise LawFileError(f"{src.where('bootstrap', str(name))}: bootstrap.{name} must hold finite numbers")
    return out


def _ranges(data: Any, src: _Source) -> dict[str, tuple[float, float]]:
    out = {}
    for name, pair in data.items() if isinstance(data, dict) else ():
        try:
            lo, hi = (float(x) for x in pair)
        except (TypeError, ValueError, OverflowError):
            raise LawFileError(
                f"{src.where('fitted_range', str(name))}: fitted_range.{name} must be [low, high]"
            ) from None
        if not (0 < lo <= hi):
            raise LawFileError(f"{src.where('fitted_range', str(name))}: fitted_range.{name} must have 0 < low <= high")
        out[str(name)] = (lo, hi)
    return out


def _convention(name: Any, src: _Source) -> str:
    from scalecalc.flops import CONVENTIONS

    if str(name) not in CONVENTIONS:
        raise LawFileError(
            f"{src.where('flops')}: unknown FLOP convention {name!r}; choose from {', '.join(sorted(CONVENTIONS))}"
        )
    return str(name)


def _check_symbols(constants, formulas, define, hparams, src: _Source) -> None:
    known = set(constants) | _VARIABLES
    for name, expr in define:
        _undefined(expr, known, src, "define", name)
        known.add(name)
    for key, expr in formulas.items():
        _undefined(expr, known, src, key)
    for key, expr in hparams.items():
        _undefined(expr, known, src, "hyperparameters", key)


def _undefined(expr: Expr, known: set, src: _Source, *keys: str) -> None:
    missing = sorted(expr.symbols - known)
    if missing:
        raise LawFileError(
            f"{src.where(*keys)}: {'.'.join(keys)} uses undefined name(s) {', '.join(missing)}; "
            "define them under constants (variables are N, D, C, L, U)"
        )
