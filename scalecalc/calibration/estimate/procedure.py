"""Stored curves -> Kaplan / Su et al. constants with bootstrap intervals, and the held-out check.

Pipeline (docs/reference.md §6, reconstructed from Kaplan et al. 2020 §5 and App. D.3):

1. N_c, α_N from the final losses (``fits.fit_loss_n``), also with an irreducible term;
2. B*, α_B by the contour method on every model size run at 2+ batch sizes (``contour``);
3. S_c, α_S (and N_c, α_N jointly when step 2 succeeded) from L(N, S_min) over all points
   after warmup, S_min = S/(1 + B_crit(L)/B) with B_crit from step 2 (``fits.fit_curves``);
4. Chinchilla form and exponent a from IsoFLOP runs through ``scalecalc.fit`` (``isoflop``);
5. case-resampling bootstrap over runs for steps 1-3 (seeded); with seed replicates (recipe
   ``seeds: N``) a two-stage *seed bootstrap*: configurations are resampled, then the seeds of
   each, so every interval includes seed-to-seed noise (Davison & Hinkley 1997, "Bootstrap
   Methods and their Application", §3.8, two-stage resampling of clustered data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalecalc.errors import NotEnoughData, ScalecalcError

from .contour import Contour, contours, fit_bcrit
from .curves import Curve, as_curves, group_by_size, replicate_groups, seed_spread
from .fits import CurveFit, final_points, fit_curves, fit_loss_n, fit_loss_n_e
from .isoflop import fit_isoflop
from .kaplan import frontier, loss_nsb
from .result import KAPLAN, Estimate

_BOOT_KEYS = KAPLAN + ("N_c_final", "alpha_N_final")


@dataclass(frozen=True)
class _Core:
    """One pass of steps 1-3 on a set of curves (the full data, or one bootstrap resample)."""

    constants: dict[str, float]
    contours: tuple[Contour, ...]
    notes: tuple[str, ...]
    curve_fit: CurveFit
    e_at_bound: bool


def _core(
    curves: Sequence[Curve],
    *,
    joint: bool | None,
    n_levels: int,
    start: CurveFit | None = None,
    residual: str = "forward",
) -> _Core:
    N, L = final_points(curves)
    power = fit_loss_n(N, L)
    consts = {"N_c_final": power.N_c, "alpha_N_final": power.alpha_N}
    notes, at_bound = [], False
    if len(N) >= 3:
        with_e = fit_loss_n_e(N, L)
        consts.update(E_N=with_e.E, N_c_E=with_e.N_c, alpha_N_E=with_e.alpha_N)
        at_bound = with_e.at_bound
    found = tuple(c for g in group_by_size(curves) for c in contours(g, n_levels))
    try:
        bc = fit_bcrit(found)
        consts.update(Bstar=bc.Bstar, alpha_B=bc.alpha_B)
        bcrit = (bc.Bstar, bc.alpha_B)
    except NotEnoughData as exc:
        notes.append(str(exc))
        bcrit = None
    if joint is None:
        # Without B_crit the S_min = S model is misspecified for B < B_crit, and a joint fit lets
        # the S term drag alpha_N (12-16 % low on synthetic Kaplan curves); hold N_c, alpha_N then.
        joint = bcrit is not None
    cf = fit_curves(curves, bcrit=bcrit, start=start or power, joint=joint, residual=residual)
    consts.update(N_c=cf.N_c, alpha_N=cf.alpha_N, S_c=cf.S_c, alpha_S=cf.alpha_S)
    if bcrit is not None:
        consts.update(frontier(cf.N_c, cf.alpha_N, cf.S_c, cf.alpha_S, *bcrit))
    return _Core(consts, found, tuple(notes), cf, at_bound)


def estimate(
    source,
    *,
    bootstrap: int = 100,
    seed: int = 0,
    joint: bool | None = None,
    confidence: float = 0.95,
    n_levels: int = 12,
    residual: str = "forward",
) -> Estimate:
    """Estimate Kaplan / Su et al. constants (and Chinchilla's, with IsoFLOP runs) from a sweep.

    Parameters
    ----------
    source : Store or sequence of Curve
        A results store (its ``done`` runs are used) or curves built by the caller.
    bootstrap : int
        Case-resampling replicates over runs (0 to skip intervals).
    seed : int
        Seed of the resampling (``numpy.random.default_rng``).
    joint : bool or None
        True: refit N_c, α_N together with S_c, α_S on the learning curves; False: hold them at the
        final-loss values of step 1 (Su et al.); None (default): joint when B_crit(L) was
        estimated, else held (see ``fits.fit_curves`` and ``_core``).
    confidence : float
        Coverage of the percentile intervals.
    n_levels : int
        Equal-loss contours per batch-size sweep.
    residual : {'forward', 'convert'}
        How step 3 compares model and curves (``fits.fit_curves``): L solved at each logged step
        (default), or Kaplan's literal conversion of steps to S_min with the measured loss.

    Raises
    ------
    NotEnoughData
        Fewer than 2 model sizes, or no evaluations after warmup.
    """
    curves = as_curves(source)
    if not curves:
        raise NotEnoughData("no finished runs in the store; run `scalecalc calibrate run` first")
    full = _core(curves, joint=joint, n_levels=n_levels, residual=residual)
    constants = dict(full.constants)
    iso_consts, iso_ci, iso_notes = fit_isoflop(curves, bootstrap=bootstrap, seed=seed)
    constants.update(iso_consts)
    columns, n_ok = _bootstrap(curves, full, bootstrap, seed, n_levels)
    intervals = _intervals(columns, confidence)
    intervals.update(iso_ci)
    aligned = _aligned(columns)
    warnings = _warnings(curves, full, iso_notes, bootstrap, n_ok)
    method = {
        "procedure": "Kaplan et al. 2020 §5 / App. B; Su et al. 2024 (docs/reference.md §6)",
        "joint": full.curve_fit.joint,
        "batch_adjusted": full.curve_fit.batch_adjusted,
        "residual": full.curve_fit.residual,
        "curve_rms_lnL": full.curve_fit.rms,
        "curve_points": full.curve_fit.n_points,
        "contours_used": sum(c.ok for c in full.contours),
        "contours_tried": len(full.contours),
        "bootstrap": bootstrap,
        "bootstrap_valid": n_ok,
        "seed": seed,
        "confidence": confidence,
        "seed_bootstrap": any(len(g) > 1 for g in replicate_groups(curves)),
    }
    provenance = _provenance(source, curves)
    if method["seed_bootstrap"]:  # the law file carries the replicates behind its intervals
        provenance["replicates"] = seed_spread(curves)
    return Estimate(
        constants,
        intervals,
        aligned,
        len(curves),
        len(group_by_size(curves)),
        tuple(warnings),
        provenance,
        _fitted_range(curves),
        full.contours,
        method,
    )


def _bootstrap(curves, full: _Core, n: int, seed: int, n_levels: int):
    """Columns of the constants over ``n`` resamples of whole runs (NaN where not estimable)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[float]] = {k: [] for k in full.constants}
    n_ok = 0
    for _ in range(n):
        pick = resample(curves, rng)
        try:
            rep = _core(
                pick,
                joint=full.curve_fit.joint,
                n_levels=n_levels,
                start=full.curve_fit,
                residual=full.curve_fit.residual,
            ).constants
            n_ok += 1
        except (ScalecalcError, ValueError, np.linalg.LinAlgError):
            continue  # a resample with too few sizes: not a replicate of this design
        for k in columns:
            value = rep.get(k, np.nan)
            columns[k].append(value if np.isfinite(value) else np.nan)
    return {k: np.array(v) for k, v in columns.items()}, n_ok


def resample(curves: Sequence[Curve], rng: np.random.Generator) -> list[Curve]:
    """One bootstrap resample: whole runs with replacement; with seed replicates, the
    configurations with replacement and then the seeds within each (two-stage)."""
    groups = replicate_groups(curves)
    if all(len(g) == 1 for g in groups):  # one seed each: plain case resampling, as before
        return [curves[i] for i in rng.integers(0, len(curves), len(curves))]
    pick = []
    for gi in rng.integers(0, len(groups), len(groups)):
        group = groups[gi]
        pick.extend(group[i] for i in rng.integers(0, len(group), len(group)))
    return pick


def _intervals(columns: dict[str, np.ndarray], confidence: float) -> dict[str, tuple[float, float]]:
    tail = 100 * (1 - confidence) / 2
    out = {}
    for k, v in columns.items():
        v = v[np.isfinite(v)]
        if len(v) >= 10:
            lo, hi = np.percentile(v, [tail, 100 - tail])
            out[k] = (float(lo), float(hi))
    return out


def _aligned(columns: dict[str, np.ndarray]) -> dict[str, tuple[float, ...]]:
    """Replicates where every Kaplan constant exists, so row i is one consistent resample."""
    keys = [k for k in KAPLAN if k in columns]
    if not keys:
        return {}
    ok = np.all([np.isfinite(columns[k]) for k in keys], axis=0)
    return {k: tuple(float(x) for x in columns[k][ok]) for k in keys} if ok.any() else {}


def _warnings(curves, full: _Core, iso_notes, n_boot: int, n_ok: int) -> list[str]:
    sizes = np.array([g[0].N_non_embedding for g in group_by_size(curves)])
    out = []
    if len(sizes) < 3:
        out.append(f"only {len(sizes)} model sizes: N_c, alpha_N rest on 2 points; use 3 or more")
    if sizes.max() / sizes.min() < 10:
        out.append(
            f"model sizes span {sizes.max() / sizes.min():.1f}x, under one decade: "
            "alpha_N is poorly determined and extrapolation is risky"
        )
    out.extend(full.notes)
    if not full.curve_fit.batch_adjusted:
        out.append("S_c, alpha_S fitted with S_min = S (no B_crit): they hold at the batch sizes of the sweep only")
    failed = [c for c in full.contours if not c.ok]
    if failed:
        reasons = sorted({c.message for c in failed})
        out.append(f"{len(failed)} of {len(full.contours)} equal-loss contours failed ({'; '.join(reasons)})")
    if full.curve_fit.rms > 0.05:  # 5 % in L: far above evaluation noise
        out.append(
            f"L(N, S_min) fits the curves poorly (RMS {full.curve_fit.rms:.2g} in ln L): "
            "S_c, alpha_S are unreliable; train longer so the runs reach the power-law "
            "regime, or raise warmup_steps past the initial drop"
        )
    if full.curve_fit.at_bound:
        out.append(
            "the L(N, S_min) fit ended on a bound of its search box (alpha_N <= 5, "
            "alpha_S <= 10): the curves do not pin N_c, alpha_N, S_c, alpha_S down"
        )
    if full.e_at_bound:
        out.append(
            f"irreducible loss E_N = {full.constants['E_N']:.3g} is at a bound of its fit: "
            "the sizes do not determine it"
        )
    out.extend(iso_notes)
    if n_boot and n_ok < 0.8 * n_boot:
        out.append(f"only {n_ok} of {n_boot} bootstrap resamples could be fitted: intervals are rough")
    return out


def _fitted_range(curves: Sequence[Curve]) -> dict[str, tuple[float, float]]:
    def span(values):
        v = np.asarray(values, float)
        return (float(v.min()), float(v.max()))

    return {
        "params": span([c.N_non_embedding for c in curves]),
        "tokens": span([c.tokens[-1] for c in curves]),
        "compute": span([c.flops[-1] for c in curves]),
        "loss": span(
            [np.nanmin(c.loss) for c in curves]
            + [np.nanmax(c.loss[c.after_warmup()]) for c in curves if c.after_warmup().any()]
        ),
        "batch": span([c.batch_tokens for c in curves]),
    }


def _provenance(source, curves: Sequence[Curve]) -> dict[str, Any]:
    prov: dict[str, Any] = {}
    if hasattr(source, "meta"):
        meta = dict(source.meta() or {})
        prov.update({k: v for k, v in meta.items() if k not in ("recipe_text",)})
        prov.setdefault("recipe", meta.get("recipe_name") or meta.get("recipe"))
        runs = source.runs(status="done")
        devices = sorted({r.device for r in runs if r.device})
        hashes = sorted({r.corpus_hash for r in runs if r.corpus_hash})
        prov.update(devices=devices, corpus_hash=hashes[0] if len(hashes) == 1 else hashes)
        prov["shape"] = _shape(runs)
    from scalecalc.laws.lawfile import provenance

    versions = dict(prov.pop("versions", None) or {})
    return provenance("scalecalc calibrate fit", versions, **prov, n_runs=len(curves))


def _shape(runs) -> dict[str, float] | None:
    """Vocabulary, context and median aspect ratio of the sweep, so plans with the calibrated law
    derive shapes and shape-aware FLOPs like the models it was measured on."""
    configs = [r.config for r in runs if {"vocab_size", "seq_len"} <= r.config.keys()]
    if not configs:
        return None
    aspect = [c["d_model"] / c["n_layer"] for c in configs if c.get("n_layer")]
    return {
        "vocab": int(max(c["vocab_size"] for c in configs)),
        "seq_len": int(max(c["seq_len"] for c in configs)),
        **({"aspect_ratio": float(np.median(aspect))} if aspect else {}),
    }


def heldout_check(
    source,
    *,
    joint: bool | None = None,
    n_levels: int = 12,
    residual: str = "forward",
    bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Refit without the largest model and predict its whole learning curve.

    The refit uses steps 1-3 on every run of the smaller sizes. The held-out run is the longest run
    of the largest size; its curve is predicted from L(N, S_min(S, B, L)) with the refit constants,
    solved per step (``kaplan.loss_nsb``; without B* the batch correction is dropped, as in the fit).

    Returns
    -------
    dict
        ``run_id``, ``N``, ``batch_tokens``, ``steps``, ``measured``, ``predicted`` (points after
        warmup), ``final_measured`` (smoothed), ``final_predicted``, ``final_rel_error``
        (predicted/measured − 1), ``rms_rel_error`` over the curve, ``constants`` of the refit,
        ``n_runs_refit``, ``warnings``; ``final_measured_seeds`` (the final losses of every
        seed of the held-out configuration); with ``bootstrap`` > 0, ``final_interval`` (the
        ``confidence`` percentile interval of the predicted final loss over refits on
        :func:`resample` draws of the smaller sizes: fit and seed noise) and
        ``covers_measured`` (whether it contains the final loss of every measured seed).
    """
    curves = as_curves(source)
    groups = group_by_size(curves)
    if len(groups) < 3:
        raise NotEnoughData(
            f"the held-out check needs 3 or more model sizes (2 to refit), got {len(groups)}; add sizes to the recipe"
        )
    train = [c for g in groups[:-1] for c in g]
    held = max(groups[-1], key=lambda c: (c.tokens[-1], -c.final_loss))
    refit = _core(train, joint=joint, n_levels=n_levels, residual=residual)
    k = refit.constants
    keep = held.after_warmup()
    S, measured = held.steps[keep], held.loss[keep]
    predicted = loss_nsb(
        held.N_non_embedding,
        S,
        held.batch_tokens,
        **{n: k[n] for n in ("N_c", "alpha_N", "S_c", "alpha_S")},
        Bstar=k.get("Bstar"),
        alpha_B=k.get("alpha_B"),
    )
    rel = predicted / measured - 1
    seeds = [c.final_loss for c in curves if c.replicate_of is not None and c.replicate_of == held.replicate_of] or [
        held.final_loss
    ]
    extra: dict[str, Any] = {"final_measured_seeds": seeds}
    if bootstrap > 0:
        extra.update(_heldout_interval(train, held, refit, bootstrap, seed, confidence, n_levels, seeds))
    return {
        **extra,
        "run_id": held.run_id,
        "N": held.N_non_embedding,
        "batch_tokens": held.batch_tokens,
        "steps": S.tolist(),
        "measured": measured.tolist(),
        "predicted": predicted.tolist(),
        "final_measured": held.final_loss,
        "final_predicted": float(predicted[-1]),
        "final_rel_error": float(predicted[-1] / held.final_loss - 1),
        "rms_rel_error": float(np.sqrt(np.mean(rel**2))),
        "constants": dict(k),
        "n_runs_refit": len(train),
        "warnings": list(refit.notes),
    }


def _heldout_interval(
    train, held: Curve, refit: _Core, n: int, seed: int, confidence: float, n_levels: int, measured_seeds
) -> dict:
    """Percentile interval of the held-out final-loss prediction over bootstrap refits."""
    rng = np.random.default_rng(seed)
    finals = []
    S_last = held.steps[held.after_warmup()][-1:]
    for _ in range(n):
        try:
            k = _core(
                resample(train, rng),
                joint=refit.curve_fit.joint,
                n_levels=n_levels,
                start=refit.curve_fit,
                residual=refit.curve_fit.residual,
            ).constants
            value = float(
                loss_nsb(
                    held.N_non_embedding,
                    S_last,
                    held.batch_tokens,
                    **{c: k[c] for c in ("N_c", "alpha_N", "S_c", "alpha_S")},
                    Bstar=k.get("Bstar"),
                    alpha_B=k.get("alpha_B"),
                )[-1]
            )
        except (ScalecalcError, ValueError, KeyError, np.linalg.LinAlgError):
            continue
        if np.isfinite(value):
            finals.append(value)
    if len(finals) < 10:
        return {"final_interval": None, "covers_measured": None, "interval_replicates": len(finals)}
    tail = 100 * (1 - confidence) / 2
    lo, hi = (float(x) for x in np.percentile(finals, [tail, 100 - tail]))
    return {
        "final_interval": [lo, hi],
        "interval_replicates": len(finals),
        "covers_measured": bool(all(lo <= m <= hi for m in measured_seeds)),
    }
