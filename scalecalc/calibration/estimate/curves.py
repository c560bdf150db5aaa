"""Learning curves as plain arrays, the input of every estimation step.

The estimation math never sees the store or torch: it works on :class:`Curve` records, so the
procedures can be tested on synthetic curves (``scalecalc.calibration.estimate.kaplan.synthetic_curves``).
:func:`curves_from_store` is the only place that knows the store layout (docs/architecture.md,
"One calibration, end to end").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalecalc.errors import DataError


@dataclass(frozen=True, eq=False)
class Curve:
    """The validation-loss curve of one finished training run.

    Attributes
    ----------
    run_id : str
        Store id of the run (sha256 prefix of its config).
    N_non_embedding : float
        Non-embedding parameters, Kaplan et al. 2020 eq. 2.1 (the N of every Kaplan law).
    N_total : float
        All parameters (the N of the Chinchilla form, Hoffmann et al. 2022).
    batch_tokens : float
        Batch size B in tokens (sequences x sequence length).
    warmup_steps : int
        Learning-rate warmup; points at or before it are not used (Kaplan §5.1 fits "after warmup").
    steps, tokens, flops, loss : ndarray
        Logged evaluations, ordered by step: optimizer steps S, tokens seen D = B S, training FLOPs,
        validation loss L in nats/token.
    budget : float or None
        FLOP budget for runs of an IsoFLOP sweep, else None.
    replicate_of : str or None
        The run's configuration without its seed (a hash): runs sharing it are seed replicates
        (recipe ``seeds: N``). None: the run is its own configuration.
    """

    run_id: str
    N_non_embedding: float
    N_total: float
    batch_tokens: float
    warmup_steps: int
    steps: np.ndarray = field(repr=False)
    tokens: np.ndarray = field(repr=False)
    flops: np.ndarray = field(repr=False)
    loss: np.ndarray = field(repr=False)
    budget: float | None = None
    replicate_of: str | None = None

    def after_warmup(self) -> np.ndarray:
        """Boolean mask of the points past warmup with a finite, positive loss."""
        return (self.steps > self.warmup_steps) & np.isfinite(self.loss) & (self.loss > 0)

    @property
    def final_loss(self) -> float:
        """Validation loss at the last step, smoothed over the last evaluations (nats/token).

        Only points after warmup count (step 0 and warmup are not on the curve's power law);
        a run too short to have any uses its last valid point as is.
        """
        keep = self.after_warmup()
        if not keep.any():
            valid = np.isfinite(self.loss) & (self.loss > 0)
            if not valid.any():
                return float("nan")
            return float(self.loss[valid][-1])
        return float(np.exp(smooth_log_loss(self.steps[keep], self.loss[keep])[-1]))


def make_curve(
    run_id: str,
    N_non_embedding: float,
    N_total: float,
    batch_tokens: float,
    warmup_steps: int,
    steps,
    loss,
    *,
    flops_per_token: float | None = None,
    tokens=None,
    flops=None,
    budget: float | None = None,
) -> Curve:
    """Build a :class:`Curve`, deriving tokens (B S) and FLOPs (tokens x FLOPs/token) when absent."""
    steps = np.asarray(steps, dtype=float)
    order = np.argsort(steps, kind="stable")
    steps = steps[order]
    loss = np.asarray(loss, dtype=float)[order]
    tokens = steps * batch_tokens if tokens is None else np.asarray(tokens, float)[order]
    if flops is None:
        per_token = 6.0 * N_non_embedding if flops_per_token is None else flops_per_token
        flops = tokens * per_token  # FLOPs, Kaplan C = 6 N B S (§2.1) unless told otherwise
    else:
        flops = np.asarray(flops, float)[order]
    return Curve(
        run_id,
        float(N_non_embedding),
        float(N_total),
        float(batch_tokens),
        int(warmup_steps),
        steps,
        tokens,
        flops,
        loss,
        budget,
    )


def smooth_log_loss(steps: np.ndarray, loss: np.ndarray, window: float = 0.1) -> np.ndarray:
    """ln L smoothed by a local straight line in ln S over a window proportional to the step.

    Each point is replaced by the value at its own ln S of the least-squares line through the
    points with |ln S' − ln S| <= ``window`` (±10 % of the step; Porian et al. use a proportional
    ±5 % window, docs/reference.md §5.5). A local *line* rather than a mean, because the curve falls
    steadily in log-log: a mean is biased upwards there, a line is not, also at the last point.
    Where the window holds a single evaluation (sparse early log-spaced ones) it is returned as is.
    Steps must be positive (callers pass the points after warmup).
    """
    x = np.log(np.asarray(steps, float))
    y = np.log(np.asarray(loss, float))
    lo = np.searchsorted(x, x - window, side="left")
    hi = np.searchsorted(x, x + window, side="right")
    n = hi - lo

    def wsum(v):  # sum of v over each point's window, via cumulative sums (O(n))
        c = np.concatenate([[0.0], np.cumsum(v)])
        return c[hi] - c[lo]

    dx = x - x.mean()  # centred for accuracy of the moment sums
    sx, sy, sxx, sxy = wsum(dx), wsum(y), wsum(dx * dx), wsum(dx * y)
    var = sxx - sx * sx / n
    ok = var > 1e-12 * np.maximum(sxx, 1e-300)
    slope = np.where(ok, (sxy - sx * sy / n) / np.where(ok, var, 1.0), 0.0)
    return sy / n + slope * (dx - sx / n)


def _config_value(config: dict, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def _warmup_steps(cfg: dict, N_total: float, B: float) -> int:
    """Warmup in steps: stored, or fixed by the recipe, or its token count (default N tokens,
    Porian et al. 2024, as ``recipes.RunConfig.horizon`` derives it)."""
    steps = _config_value(cfg, "warmup_steps", "fixed_warmup_steps")
    if steps is not None:
        return int(steps)
    tokens = _config_value(cfg, "warmup_tokens", default=N_total)
    return int(np.ceil(float(tokens) / B))


def curves_from_store(store) -> list[Curve]:
    """Curves of the runs marked ``done`` in a results store, ordered by N then batch size.

    N comes from ``RunRecord.params`` ("non_embedding", "total"); the batch in tokens is
    ``config["batch_size"] * config["seq_len"]``; FLOPs are the store's own per-point values;
    the IsoFLOP budget is ``budget_amount`` of runs with ``budget_kind == "flops"`` (RunConfig).
    Points without a validation loss are skipped; a run with none is skipped too.
    """
    curves = []
    for run in store.runs(status="done"):
        cfg = run.config
        points = [p for p in store.points(run.id) if p.val_loss is not None]
        if not points:
            continue
        try:
            B = float(cfg["batch_size"]) * float(cfg["seq_len"])
            N_ne = float(run.params["non_embedding"])
            N_tot = float(run.params.get("total", N_ne))
        except (KeyError, TypeError) as exc:
            raise DataError(
                f"store run {run.id}: missing {exc} in its config or params; re-run it with this scalecalc version"
            ) from None
        budget = cfg.get("budget_amount") if cfg.get("budget_kind") == "flops" else None
        curves.append(
            Curve(
                run_id=run.id,
                N_non_embedding=N_ne,
                N_total=N_tot,
                batch_tokens=B,
                warmup_steps=_warmup_steps(cfg, N_tot, B),
                steps=np.array([p.step for p in points], float),
                tokens=np.array([p.tokens for p in points], float),
                flops=np.array([p.flops for p in points], float),
                loss=np.array([p.val_loss for p in points], float),
                budget=None if budget is None else float(budget),
                replicate_of=_without_seed(cfg),
            )
        )
    curves.sort(key=lambda c: (c.N_non_embedding, c.batch_tokens, c.run_id))
    return curves


def _without_seed(cfg: dict) -> str:
    """Hash of a stored config with its seed removed: equal for the seeds of one configuration."""
    import hashlib
    import json

    rest = {k: v for k, v in cfg.items() if k != "seed"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()[:16]


def replicate_groups(curves: Sequence[Curve]) -> list[list[Curve]]:
    """Curves grouped by configuration (seed replicates together), in first-seen order."""
    groups: dict[str, list[Curve]] = {}
    for c in curves:
        groups.setdefault(c.replicate_of or c.run_id, []).append(c)
    return list(groups.values())


def seed_spread(curves: Sequence[Curve]) -> list[dict]:
    """Final-loss spread over the seeds of each configuration, smallest model first.

    One row per configuration: ``N`` (non-embedding), ``batch_tokens``, ``seeds`` (replicates),
    ``mean``, ``std`` (sample, ddof=1; None for one seed), ``low``, ``high`` (nats/token),
    ``rel_spread`` = (high - low) / mean.
    """
    rows = []
    for group in replicate_groups(curves):
        final = np.array([c.final_loss for c in group])
        final = final[np.isfinite(final)]
        if not len(final):
            continue
        rows.append(
            {
                "N": group[0].N_non_embedding,
                "batch_tokens": group[0].batch_tokens,
                "seeds": len(final),
                "mean": float(final.mean()),
                "std": float(final.std(ddof=1)) if len(final) > 1 else None,
                "low": float(final.min()),
                "high": float(final.max()),
                "rel_spread": float((final.max() - final.min()) / final.mean()),
            }
        )
    rows.sort(key=lambda r: (r["N"], r["batch_tokens"]))
    return rows


def as_curves(source) -> list[Curve]:
    """Accept a store (anything with ``runs`` and ``points``) or a sequence of curves."""
    if hasattr(source, "runs") and hasattr(source, "points"):
        return curves_from_store(source)
    curves = list(source)
    if not all(isinstance(c, Curve) for c in curves):
        raise TypeError("expected a Store or a sequence of Curve")
    return curves


def group_by_size(curves: Sequence[Curve], rtol: float = 1e-6) -> list[list[Curve]]:
    """Curves grouped by model size (equal non-embedding N), smallest first."""
    groups: list[list[Curve]] = []
    for c in sorted(curves, key=lambda c: c.N_non_embedding):
        if groups and abs(c.N_non_embedding / groups[-1][0].N_non_embedding - 1) <= rtol:
            groups[-1].append(c)
        else:
            groups.append([c])
    return groups
