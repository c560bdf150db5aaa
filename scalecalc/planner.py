"""Compute-optimal allocations: budgets in, N*, D*, loss out (pure; no printing).

``plan(law, query)`` answers every query kind of the CLI for a whole array of budgets at once:

- ``compute``: N*(C), D*(C) minimising the law's loss L(N, D) subject to C = FLOPs/token(N) * D
  under the chosen FLOP convention (closed form for the Chinchilla form with C = kND, Hoffmann
  et al. 2022 eq. 4; numerically otherwise), or read from an allocation law (N*(C) or D*(C)).
- ``params`` / ``tokens``: the budget at which a given N (or D) is compute-optimal.
- ``loss``: the least compute that reaches a target loss (refused at or below the law's floor).
- ``ratio``: a chosen tokens-per-parameter ratio at a budget, with its loss penalty.

Derivations are in docs/math.md; sympy checks the closed forms in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalecalc import flops as flopslib
from scalecalc import solve
from scalecalc.errors import InfeasibleTarget, UsageError
from scalecalc.laws import Law

__all__ = ["Query", "Plan", "plan", "QUERY_KINDS"]

QUERY_KINDS = ("compute", "params", "tokens", "loss", "ratio")
_LOG_C = (math.log(1e6), math.log(1e45))  # FLOPs searched when inverting a frontier
# conventions with FLOPs/token = k N (docs/reference.md §9); k of llama3 is flops.LLAMA3_FACTOR (5.711)
LINEAR_FLOPS = {"6nd": 6.0, "llama3": flopslib.LLAMA3_FACTOR}
_NEAR_FLOOR = 0.02  # warn when the target loss is within 2% of the law's floor


@dataclass(frozen=True)
class BlockOptions:
    """Which blocks complete a plan's rows (:mod:`scalecalc.blocks`), and their settings.

    The defaults are what ``scalecalc plan`` prints without options: a shape (``--shape-rule``)
    and hyperparameters (``--hparams``; None: the law's own rules when it has them, else
    porian2024). ``gpu`` adds hardware (time, GPU-hours, dollars), ``inference_tokens`` the
    inference-aware optimum, ``unique_tokens`` the data-constrained block.
    """

    shape_rule: str = "aspect"
    hparams: str | None = None
    gpu: str | None = None
    gpus: int = 1
    mfu: float = 0.4
    dtype: str | None = None
    usd_per_gpu_hour: float | None = None  # USD per GPU-hour; None: the catalog's price
    inference_tokens: float | None = None  # lifetime inference tokens
    inference_mfu: float | None = None  # None: mfu
    unique_tokens: float | None = None


@dataclass(frozen=True)
class Query:
    """What to plan: ``kind`` in QUERY_KINDS and its values (FLOPs, params, tokens or nats).

    ``compute`` holds the budgets for a ``ratio`` query; ``unique_tokens`` is U for
    data-constrained laws; ``flops`` overrides the law's own FLOP convention; ``blocks`` says
    which blocks complete each row (None: the allocation only, like ``plan --brief``).
    """

    kind: str
    values: np.ndarray
    tokens_per_param: float | None = None
    unique_tokens: float | None = None
    flops: str | None = None
    shape_rule: Any = None  # flops.ShapeRule; None -> the law's shape defaults
    intervals: bool = True
    blocks: BlockOptions | None = field(default_factory=BlockOptions)


@dataclass(frozen=True)
class Plan:
    """The answer for every budget of a query (arrays share one length).

    Attributes
    ----------
    compute : FLOPs under ``convention``; params : N as the law counts it (``params_kind``);
    tokens : D; tokens_per_param : D/N; loss : nats/token (NaN where the law defines none);
    flops_per_token : training FLOPs per token of the planned model under ``convention``;
    params_ci, tokens_ci, loss_ci : (n, 2) 95% bootstrap intervals, or None;
    loss_optimal, compute_overhead : for ``ratio`` queries, the optimum's loss at the same budget
    and the compute the chosen ratio costs relative to an optimal model of the same loss.
    warnings : per row, the warnings that apply to it (the blocks' included).
    shape_rule : the continuous shape (vocabulary, context, aspect) behind N's conversions.
    blocks : per row, the blocks (``shape``, ``hyperparameters``, ...; see ``Query.blocks``).
    notes : warnings about the whole plan (e.g. blocks skipped for a bulk query).
    """

    law: Law
    query: Query
    convention: str
    method: str
    compute: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    flops_per_token: np.ndarray
    warnings: tuple[tuple[str, ...], ...]
    params_ci: np.ndarray | None = None
    tokens_ci: np.ndarray | None = None
    loss_ci: np.ndarray | None = None
    loss_optimal: np.ndarray | None = None
    compute_overhead: np.ndarray | None = None
    shape_rule: Any = None
    blocks: tuple[dict, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def tokens_per_param(self) -> np.ndarray:
        return self.tokens / self.params

    def __len__(self) -> int:
        return len(self.compute)

    def rows(self) -> list[dict]:
        """One dict per budget with the stable JSON keys (README "JSON keys")."""
        columns = {
            "compute": self.compute,
            "params": self.params,
            "tokens": self.tokens,
            "tokens_per_param": self.tokens_per_param,
            "loss": self.loss,
            "flops_per_token": self.flops_per_token,
        }
        optional = {
            "params_ci": self.params_ci,
            "tokens_ci": self.tokens_ci,
            "loss_ci": self.loss_ci,
            "loss_optimal": self.loss_optimal,
            "compute_overhead": self.compute_overhead,
        }
        columns.update({k: v for k, v in optional.items() if v is not None})
        fixed = {
            "law": self.law.name,
            "flops_convention": self.convention,
            "query": self.query.kind,
            "params_kind": _reported_kind(self.law),
        }
        keys = ["law", "flops_convention", "query", *columns, "params_kind", "warnings"]
        values = [_listed(v) for v in columns.values()]
        n = len(self)
        const = [[fixed[k]] * n for k in ("law", "flops_convention", "query")]
        table = zip(*const, *values, [fixed["params_kind"]] * n, (list(w) for w in self.warnings))
        rows = [dict(zip(keys, row)) for row in table]
        for row, blocks in zip(rows, self.blocks):
            row.update(blocks)
        return rows


def _listed(array: np.ndarray) -> list:
    """Python values with NaN/inf as None (JSON null), column-wise for speed."""
    array = np.asarray(array, dtype=float)
    if np.all(np.isfinite(array)):
        return array.tolist()
    return np.where(np.isfinite(array), array, None).tolist()  # type: ignore[call-overload]


def _reported_kind(law: Law) -> str:
    return "non_embedding" if law.params_kind == "flops_per_token" else law.params_kind


def plan(law: Law, query: Query) -> Plan:
    """Plan ``query`` under ``law``: the allocation and, per ``query.blocks``, the blocks around it.

    >>> from scalecalc.laws import load_law
    >>> result = plan(load_law("hoffmann2022-a3"), Query("compute", [5.76e23]))
    >>> row = result.rows()[0]
    >>> f"{row['params']:.3g} params, {row['tokens']:.3g} tokens, {row['shape']['n_layer']} layers"
    '4.04e+10 params, 2.38e+12 tokens, 59 layers'
    """
    if query.kind not in QUERY_KINDS:
        raise UsageError(f"unknown query kind {query.kind!r}")
    values = np.atleast_1d(np.asarray(query.values, dtype=float))
    model = _Model(law, query)
    result = _solve(model, query.kind, values, law.constants, query)
    ci = _intervals(model, query, values) if query.intervals and law.bootstrap else {}
    warnings = _warnings(model, query, result)
    if law.params_kind == "flops_per_token":
        # DeepSeek's law is on M = FLOPs/token; report the non-embedding N of the shape with that M.
        result["params"] = model.counts(result["flops_per_token"])["non_embedding"]
        ci.pop("params_ci", None)
    allocation = Plan(
        law=law,
        query=query,
        convention=model.convention,
        method=model.method,
        warnings=warnings,
        shape_rule=model.rule,
        **result,
        **ci,
    )
    if query.blocks is None:
        return allocation
    from scalecalc import blocks  # lazily: `plan --brief` never imports the block modules

    return blocks.attach(allocation, query.blocks)


# ---------------------------------------------------------------------------------------------
# The law under a FLOP convention


class _Model:
    """A law bound to a FLOP convention and a shape rule: N -> FLOPs/token, and the optimum."""

    def __init__(self, law: Law, query: Query):
        self.law = law
        self.convention = flopslib.get_convention(query.flops or law.flops, "--flops").name
        self.rule = query.shape_rule or shape_rule(law)
        self.k = LINEAR_FLOPS.get(self.convention) if law.params_kind != "flops_per_token" else None
        if law.params_kind == "flops_per_token" and self.convention == "deepseek":
            self.k = 1.0  # DeepSeek's M is FLOPs/token itself: C = M D
        self.variables = {"U": query.unique_tokens} if query.unique_tokens else {}
        missing = [v for v in law.requires if v not in self.variables]
        if missing:
            raise UsageError(
                f"--law {law.name}: this law needs --unique-tokens (U, the number of unique tokens available)"
            )
        self.closed = law.form == "chinchilla" and law.loss is not None and self.k is not None and not law.define
        allocation = law.params is not None or law.tokens is not None
        self.method = "allocation" if allocation else ("closed-form" if self.closed else "numeric")

    # -- FLOPs per token ---------------------------------------------------------------------
    def flops_per_token(self, n: np.ndarray) -> np.ndarray:
        """Training FLOPs per token of a model with N = n (as the law counts N)."""
        if self.k is not None:
            return self.k * n
        return flopslib.flops_per_token(self.counts(n), self.convention, self._kind())

    def counts(self, n: np.ndarray) -> dict:
        return flopslib.width_counts(self.width(n), self.rule)

    def width(self, n: np.ndarray) -> np.ndarray:
        if self.law.params_kind == "flops_per_token":  # invert DeepSeek's M(d_model)
            m = lambda x: np.log(
                flopslib.flops_per_token(flopslib.width_counts(np.exp(x), self.rule), "deepseek", "non_embedding")
            )
            return np.exp(solve.bisect_increasing(m, np.log(n), math.log(1.0), math.log(1e7)))
        return flopslib.width_for_params(np.asarray(n, dtype=float), self.law.params_kind, self.rule)

    def _kind(self) -> str:
        return "non_embedding" if self.law.params_kind == "flops_per_token" else self.law.params_kind

    # -- the law's formulas ------------------------------------------------------------------
    def loss(self, n, d, constants) -> np.ndarray:
        if self.law.loss is None:
            return np.full(np.broadcast(n, d).shape, np.nan)
        return self.law.evaluate("loss", constants, N=n, D=d, **self.variables)

    def optimum(self, c: np.ndarray, constants) -> tuple[np.ndarray, np.ndarray]:
        """(N*, D*) at compute c under this convention."""
        law = self.law
        if law.params is not None:
            n = law.evaluate("params", constants, C=c)
            return n, c / self.flops_per_token(n)
        if law.tokens is not None:
            d = law.evaluate("tokens", constants, C=c)
            return self._params_for_flops_per_token(c / d), d
        if self.closed:
            n = _chinchilla_params(constants, c / self.k)
            return n, c / (self.k * n)
        return self._numeric_optimum(c, constants)

    def _params_for_flops_per_token(self, f: np.ndarray) -> np.ndarray:
        if self.k is not None:
            return f / self.k
        g = lambda x: np.log(self.flops_per_token(np.exp(x)))
        return np.exp(solve.bisect_increasing(g, np.log(f), math.log(1.0), math.log(1e16)))

    def _numeric_optimum(self, c, constants):
        c = np.asarray(c, dtype=float)
        if self.k is not None:  # search over ln N
            n_of = np.exp
        else:  # search over ln d_model: N and FLOPs/token are explicit in the width
            n_of = lambda x: self._counts_n(np.exp(x))

        def objective(x):
            n = n_of(x)
            return self.loss(n, c / self.flops_per_token(n), constants)

        lo, hi = self._bracket(c)
        x = solve.minimize(objective, lo, hi)
        n = n_of(x)
        return n, c / self.flops_per_token(n)

    def _counts_n(self, d):
        return flopslib.width_counts(d, self.rule)[self._kind()]

    def _bracket(self, c):
        """Search range: from a 1e3-parameter model to one trained on a single token per 10 params."""
        lo_n, hi_n = np.full_like(c, 1e3), np.maximum(np.sqrt(c / 0.6), 1e4)
        if self.k is not None:
            return np.log(lo_n), np.log(hi_n)
        return np.log(self.width(lo_n)), np.log(self.width(hi_n))


def _chinchilla_params(constants, c_over_k):
    """Hoffmann et al. 2022 eq. 4: N* = G (C/k)^a, G = (alpha A / (beta B))^(1/(alpha+beta))."""
    A, B, alpha, beta = (constants[k] for k in ("A", "B", "alpha", "beta"))
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    return G * c_over_k ** (beta / (alpha + beta))


def shape_rule(law: Law, *, vocab=None, seq_len=None, aspect_ratio=None):
    """The continuous shape rule for ``law``: its file's ``shape:`` defaults, then ``flops.ShapeRule``'s,
    each overridable (``--vocab``, ``--seq-len``, ``--aspect-ratio``)."""
    shape, base = dict(law.shape), flopslib.ShapeRule()
    return flopslib.ShapeRule(
        aspect_ratio=float(aspect_ratio or shape.get("aspect_ratio", base.aspect_ratio)),
        vocab=int(vocab or shape.get("vocab", base.vocab)),
        seq_len=int(seq_len or shape.get("seq_len", base.seq_len)),
    )


# ---------------------------------------------------------------------------------------------
# Queries


def _solve(model: _Model, kind: str, values: np.ndarray, constants, query: Query) -> dict:
    if kind == "compute":
        c = values
    elif kind == "params":
        c = _invert_frontier(model, constants, values, lambda n, d: n, "--params")
    elif kind == "tokens":
        c = _invert_frontier(model, constants, values, lambda n, d: d, "--tokens")
    elif kind == "loss":
        c = _compute_for_loss(model, constants, values)
    else:
        return _ratio(model, constants, values, query.tokens_per_param)
    n, d = model.optimum(c, constants)
    return {
        "compute": c,
        "params": n,
        "tokens": d,
        "loss": model.loss(n, d, constants),
        "flops_per_token": model.flops_per_token(n),
    }


def _invert_frontier(model, constants, target, pick, option) -> np.ndarray:
    """The budget C at which the optimal N (or D) equals ``target`` (monotone in C)."""
    f = lambda x: np.log(pick(*model.optimum(np.exp(x), constants)))
    x = solve.solve_monotone(f, np.log(target), *_LOG_C)
    if np.any(np.isnan(x)):
        raise InfeasibleTarget(
            f"{option}: value outside what law {model.law.name} can reach between 1e6 and 1e45 FLOPs"
        )
    return np.exp(x)


def _floor(model, constants) -> float:
    if "E" in constants and model.law.form in ("chinchilla", "data-constrained"):
        return float(constants["E"])
    n, d = model.optimum(np.array([1e60]), constants)
    return float(model.loss(n, d, constants)[0])


def _compute_for_loss(model, constants, target) -> np.ndarray:
    law = model.law
    if law.loss is None:
        raise UsageError(f"--loss: law {law.name} defines no loss; choose a law with L(N, D) (see `scalecalc laws`)")
    floor = _floor(model, constants)
    low = target[target <= floor]
    if low.size:
        raise InfeasibleTarget(
            f"--loss: {low[0]:g} is at or below the floor of law {law.name} ({floor:.4g} nats/token, "
            f"reached only with infinite compute); choose a loss above {floor:.4g}"
        )
    f = lambda x: -np.log(model.loss(*model.optimum(np.exp(x), constants), constants))
    x = solve.bisect_increasing(f, -np.log(target), *_LOG_C)
    if np.any(np.isnan(x)):
        raise InfeasibleTarget(f"--loss: target above what law {law.name} predicts at 1e6 FLOPs; choose a lower loss")
    return np.exp(x)


def _ratio(model, constants, c, ratio) -> dict:
    """N, D with D/N = ratio spending C exactly; the loss penalty against the optimum."""
    if ratio is None or not ratio > 0:
        raise UsageError("--tokens-per-param must be a positive number (e.g. 20)")
    g = lambda x: np.log(model.flops_per_token(np.exp(x)) * ratio * np.exp(x))
    n = np.exp(solve.bisect_increasing(g, np.log(c), math.log(1.0), math.log(1e20)))
    d = ratio * n
    loss = model.loss(n, d, constants)
    out = {"compute": c, "params": n, "tokens": d, "loss": loss, "flops_per_token": model.flops_per_token(n)}
    if model.law.loss is not None:
        n0, d0 = model.optimum(c, constants)
        out["loss_optimal"] = model.loss(n0, d0, constants)
        with np.errstate(all="ignore"):
            out["compute_overhead"] = c / _compute_for_loss(model, constants, loss)
    return out


def _intervals(model, query, values, limit: int = 200_000) -> dict:
    """95% percentile intervals from the law's bootstrap replicates of its constants: every
    replicate (so ``plan --law fitted.yaml`` gives the interval ``fit --budget`` printed), thinned
    evenly only for bulk queries, to at most ``limit`` solves in all."""
    reps = model.law.replicates(limit=max(20, limit // max(len(values), 1)))
    samples: dict[str, list] = {"params": [], "tokens": [], "loss": []}
    for constants in reps:
        try:
            r = _solve(model, query.kind, values, constants, query)
        except InfeasibleTarget:
            continue
        for key in samples:
            samples[key].append(r[key])
    if not samples["params"]:
        return {}
    out = {}
    for key, arr in samples.items():
        stack = np.vstack(arr)
        if np.all(np.isnan(stack)):
            continue
        out[f"{key}_ci"] = np.nanpercentile(stack, [2.5, 97.5], axis=0).T
    return out


# ---------------------------------------------------------------------------------------------
# Warnings


def _warnings(model: _Model, query: Query, r: dict) -> tuple[tuple[str, ...], ...]:
    n = len(r["compute"])
    rows: list[list[str]] = [[] for _ in range(n)]
    law = model.law
    common = list(law.warnings)
    if model.convention != law.flops:
        common.append(
            f"planned under the {model.convention} FLOP convention instead of the law's own {law.flops}: "
            f"N ({law.params_kind}) converted through a shape with d_model/n_layer = {model.rule.aspect_ratio:g}, "
            f"vocab {model.rule.vocab}, seq_len {model.rule.seq_len}"
        )
    for key, unit in (("compute", "FLOPs"), ("params", "parameters"), ("tokens", "tokens")):
        if key in law.fitted_range:
            _range_warnings(rows, r[key], law.fitted_range[key], key, unit)
    if query.kind == "loss":
        floor = _floor(model, law.constants)
        near = np.nonzero((r["loss"] - floor) < _NEAR_FLOOR * floor)[0]
        for i in near:
            rows[i].append(
                f"target loss {r['loss'][i]:.4g} is within {_NEAR_FLOOR:.0%} of the law's floor {floor:.4g}: the "
                f"compute needed is extremely sensitive to the constants"
            )
    if query.unique_tokens:
        epochs = r["tokens"] / query.unique_tokens
        for i in np.nonzero(epochs > 4)[0]:
            what = (
                "repeated data is nearly worthless (past 16 epochs)"
                if epochs[i] > 16
                else "diminishing returns past 4 epochs"
            )
            rows[i].append(
                f"{epochs[i]:.1f} epochs over {query.unique_tokens:.3g} unique tokens: {what} (Muennighoff et al. 2023)"
            )
        if "U" not in law.requires:
            common.append(
                f"law {law.name} ignores data repetition; use --law muennighoff2023 to plan with --unique-tokens"
            )
    return tuple(tuple(common + row) for row in rows)


def _range_warnings(rows, values, bounds, key, unit) -> None:
    """Flag rows outside the fitted range by how many decades (0.1-decade resolution)."""
    lo, hi = bounds
    with np.errstate(all="ignore"):
        # signed distance to the nearest bound: + above hi, - below lo, 0 inside [lo, hi]
        values = np.asarray(values, dtype=float)
        decades = np.round(
            np.where(values > hi, np.log10(values / hi), np.where(values < lo, -np.log10(lo / values), 0.0)), 1
        )
    flagged = np.nonzero(np.abs(decades) >= 0.1)[0]
    text = {}  # one string per distinct distance: formatting 100,000 f-strings dominates otherwise
    for d in set(decades[flagged].tolist()):  # not np.unique: it imports numpy.ma (~17 ms)
        side = "beyond" if d > 0 else "below"
        text[d] = f"extrapolating {abs(d):.1f} decades {side} the law's fitted {key} range ({lo:.3g}-{hi:.3g} {unit})"
    for i, d in zip(flagged.tolist(), decades[flagged].tolist()):
        rows[i].append(text[d])
