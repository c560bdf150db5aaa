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
from .kaplan import frontier, loss_n, loss_nsb
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
    """Predict the largest model's final loss from the smaller sizes and compare it with its seeds.

    Primary check (Kaplan eq 1.1; docs/reference.md §6 step 1): L(N) = (N_c/N)^α_N is fitted by
    least squares on ln L against ln N (``fits.fit_loss_n``) to the final losses of every seed of
    the smaller sizes, each at the held-out configuration's batch size and horizon
    (:func:`_final_runs`), and extrapolated to the largest size. Its interval is for the measured
    final loss of one new seed: refits on bootstrap resamples of those runs, drawn within each
    size, plus a draw of the seed-to-seed noise (:func:`_final_bootstrap`); with ``bootstrap`` = 0
    the analytic prediction interval of the log-log regression (:func:`_final_analytic`).

    Secondary check (eq 1.6 with S_min from eq 5.4): steps 1-3 refitted on every run of the smaller
    sizes predict the held-out run's whole learning curve, solved per step (``kaplan.loss_nsb``;
    without B* the batch correction is dropped, as in the fit). It has no interval.

    Returns
    -------
    dict
        ``run_id`` (the held-out run: the longest run of the largest size, the best seed among
        equals), ``N``, ``batch_tokens``, ``tokens`` (its horizon);
        ``final_predicted`` (eq 1.1, nats/token), ``final_interval`` ([low, high] at
        ``confidence``; None when the seed noise is unknown), ``interval_method`` ('bootstrap',
        'analytic' or None), ``interval_replicates`` and ``interval_failed`` (bootstrap refits used
        and left out), ``confidence``;
        ``final_measured`` (the mean final loss over the seeds of the held-out configuration),
        ``final_measured_seeds`` and ``seed_run_ids`` (each seed), ``final_rel_error``
        (predicted / mean − 1), ``covers_measured`` (the interval contains every seed; None without
        an interval), ``covered`` (seeds inside it) and ``n_seeds``;
        ``law`` (the eq 1.1 refit: ``form``, ``N_c``, ``alpha_N``, ``rms_lnL``), ``n_runs_refit``
        and ``n_sizes_refit`` (runs and sizes in it), ``seed_sd`` (the standard deviation of ln L
        between seeds that the interval adds), ``seed_sd_source`` ('seeds': pooled within the
        smaller sizes; 'fit residuals': no seed replicates; None: unknown), ``seed_sd_dof``;
        ``curve``: the learning-curve check, None when its refit failed: ``run_id``,
        ``batch_tokens``, ``steps``, ``measured``, ``predicted`` (points after warmup),
        ``final_measured`` (smoothed), ``final_predicted``, ``final_rel_error``, ``rms_rel_error``
        over the curve, ``constants`` of the refit, ``n_runs_refit``;
        ``warnings``.
    """
    curves = as_curves(source)
    groups = group_by_size(curves)
    if len(groups) < 3:
        raise NotEnoughData(
            f"the held-out check needs 3 or more model sizes (2 to refit), got {len(groups)}; add sizes to the recipe"
        )
    held = max(groups[-1], key=lambda c: (c.tokens[-1], -c.final_loss))
    same_config = [c for c in groups[-1] if held.replicate_of is not None and c.replicate_of == held.replicate_of]
    seeds = [c for c in same_config or [held] if np.isfinite(c.final_loss)] or [held]
    measured = [c.final_loss for c in seeds]
    mean = float(np.mean(measured))
    final = _final_heldout(_final_runs(groups[:-1], held), held.N_non_embedding, bootstrap, seed, confidence)
    warnings = final.pop("warnings")
    interval = final["final_interval"]
    covered = None if interval is None else sum(interval[0] <= m <= interval[1] for m in measured)
    try:
        curve, notes = _curve_heldout([c for g in groups[:-1] for c in g], held, joint, n_levels, residual)
        warnings.extend(f"learning-curve refit: {n}" for n in notes)
    except ScalecalcError as exc:
        curve = None
        warnings.append(f"learning-curve prediction not available: {exc}")
    return {
        "run_id": held.run_id,
        "N": held.N_non_embedding,
        "batch_tokens": held.batch_tokens,
        "tokens": float(held.tokens[-1]),
        **final,
        "final_measured": mean,
        "final_measured_seeds": measured,
        "seed_run_ids": [c.run_id for c in seeds],
        "final_rel_error": final["final_predicted"] / mean - 1,
        "covers_measured": None if covered is None else covered == len(measured),
        "covered": covered,
        "n_seeds": len(measured),
        "curve": curve,
        "warnings": warnings,
    }


def _final_runs(groups: Sequence[Sequence[Curve]], held: Curve) -> list[list[Curve]]:
    """Per smaller size, the runs whose final losses enter the held-out L(N) fit.

    Every seed of one configuration per size, the one trained like the held-out run: at its batch
    size (any batch when the size has no run at it) and to its horizon in tokens (±1 %); a size with
    no run at that horizon (a sweep whose horizon grows with N, ``tokens_per_param``) gives its
    longest runs, as the held-out run is the longest of its size. Where several configurations
    qualify (a learning-rate sweep), the one with the lowest mean final loss, the best tuned, as
    ``fits.final_points`` chooses. Only the held-out batch and horizon: the final loss of a shorter
    or smaller-batch run carries a larger S term (eq 1.6) and is not on the same L(N).
    """
    horizon = held.tokens[-1]
    out = []
    for group in groups:
        pool = [c for c in group if c.batch_tokens == held.batch_tokens] or list(group)
        pool = [c for c in pool if np.isfinite(c.final_loss) and c.final_loss > 0]
        if not pool:
            continue
        same = [c for c in pool if abs(c.tokens[-1] / horizon - 1) <= 0.01]
        if not same:
            longest = max(c.tokens[-1] for c in pool)
            same = [c for c in pool if c.tokens[-1] >= 0.99 * longest]
        out.append(min(replicate_groups(same), key=lambda g: float(np.mean([c.final_loss for c in g]))))
    return out


# The primary held-out prediction is Kaplan's eq 1.1 pure power law, not E + (N_c/N)^α_N
# (``fits.fit_loss_n_e``): with the 3-5 smaller sizes of a calibration sweep the irreducible term is
# not determined (on the measured quick-cpu sweep, 25K-332K params, it ends at its bound E = 0 and
# gives the same 1.2365 for the 788K model as the pure law, 1.8 % from the measured mean 1.2599),
# and on resamples of a few runs a 3-parameter fit extrapolates erratically, which is what made the
# old learning-curve interval unbounded. The pure law is also what the reference cites for L(N).
LN_FORM = "L = (N_c/N)^alpha_N (Kaplan et al. 2020 eq 1.1)"


def _final_heldout(train: list[list[Curve]], N0: float, bootstrap: int, seed: int, confidence: float) -> dict:
    """Eq 1.1 fitted to the final losses of ``train`` (one list of runs per size), predicted at N0."""
    strata = [np.log([c.final_loss for c in g]) for g in train]
    N = np.concatenate([np.full(len(g), g[0].N_non_embedding) for g in train]) if train else np.array([])
    y = np.concatenate(strata) if strata else np.array([])
    with np.errstate(over="ignore", invalid="ignore"):  # N_c overflows for a nearly flat L(N): refused below
        law = fit_loss_n(N, np.exp(y))  # NotEnoughData: under 2 sizes, or the loss does not fall with N
        ln_pred = float(np.log(loss_n(N0, law.N_c, law.alpha_N)))
    if not np.isfinite(ln_pred):
        raise NotEnoughData(
            f"L(N) fitted to the final losses of the smaller sizes does not extrapolate (alpha_N = {law.alpha_N:.2g}):"
            " the final loss barely falls with N; widen the range of model sizes or train longer"
        )
    sd, dof, source = _seed_noise(strata, law)
    warnings = []
    if source == "fit residuals":
        warnings.append(
            "no seed replicates among the smaller sizes: the seed-to-seed noise of the held-out interval is "
            "taken from the scatter of the final losses about L(N) (add `seeds: 2` to the recipe)"
        )
    interval, method, used, failed = None, None, 0, 0
    if sd is None:
        warnings.append(
            "the seed-to-seed noise is unknown (one run per size and only 2 sizes): no interval for the held-out loss"
        )
    elif bootstrap > 0:
        draws, failed = _final_bootstrap(strata, N, N0, sd, dof, bootstrap, seed)
        used = len(draws)
        if failed > 0.05 * bootstrap:
            warnings.append(
                f"{failed} of {bootstrap} bootstrap refits of L(N) failed (the resampled final losses do not fall "
                "with N, or the power law overflows) and were left out: the upper end of the interval is too low"
            )
        if used >= 10:
            tail = 50 * (1 - confidence)
            interval = [float(np.exp(v)) for v in np.percentile(draws, [tail, 100 - tail])]
            method = "bootstrap"
        else:
            warnings.append(f"only {used} bootstrap refits of L(N) could be used: the interval is the analytic one")
    if sd is not None and interval is None:
        interval = _final_analytic(np.log(N), y, np.log(N0), ln_pred, law, sd, dof, confidence)
        method = None if interval is None else "analytic"
    return {
        "final_predicted": float(np.exp(ln_pred)),
        "final_interval": interval,
        "interval_method": method,
        "interval_replicates": used,
        "interval_failed": failed,
        "confidence": confidence,
        "law": {"form": LN_FORM, "N_c": law.N_c, "alpha_N": law.alpha_N, "rms_lnL": law.rms},
        "n_runs_refit": len(y),
        "n_sizes_refit": len(strata),
        "seed_sd": sd,
        "seed_sd_source": source,
        "seed_sd_dof": dof,
        "warnings": warnings,
    }


def _seed_noise(strata: list[np.ndarray], law) -> tuple[float | None, int, str | None]:
    """Standard deviation of ln (final loss) between seeds, its degrees of freedom and its source.

    Pooled over the sizes with seed replicates (within-size sum of squares / Σ(n_i − 1)); without
    any, the residual standard deviation of the eq 1.1 fit (n − 2 degrees of freedom), which then
    holds the seed noise and any misfit of the law; None with 2 runs and no replicates.
    """
    dof = sum(len(v) - 1 for v in strata)
    if dof > 0:
        ss = sum(float(((v - v.mean()) ** 2).sum()) for v in strata)
        return float(np.sqrt(ss / dof)), dof, "seeds"
    n = len(strata)
    if n > 2:
        return float(law.rms * np.sqrt(n / (n - 2))), n - 2, "fit residuals"
    return None, 0, None


def _final_bootstrap(
    strata: list[np.ndarray], N: np.ndarray, N0: float, sd: float, dof: int, n: int, seed: int
) -> tuple[list[float], int]:
    """ln L at N0 for one new seed over ``n`` bootstrap refits of eq 1.1; and the refits that failed.

    Each replicate resamples the runs of every size with replacement (stratified by size, so each
    size keeps its count of runs; :func:`resample` draws configurations across sizes and can lose a
    size, which this fit of few sizes cannot afford), refits eq 1.1 and adds a seed-noise draw
    ``sd`` x Student t with ``dof`` degrees of freedom: the measured loss of one new seed, with the
    uncertainty of ``sd`` itself, estimated from a handful of seeds. Two corrections for strata of
    few runs: the resampled deviations from a size's mean are scaled by sqrt(k/(k − 1)) (k runs),
    as a bootstrap mean of k draws otherwise has (k − 1)/k of the variance of the sample mean; and
    a size with a single run gets that run plus a normal draw of sd (resampling one run never moves
    it). Refits with α_N <= 0 or a non-finite prediction are left out and counted.
    """
    rng = np.random.default_rng(seed)
    lnN0 = np.log(N0)
    draws, failed = [], 0
    for _ in range(n):
        ys = []
        for v in strata:
            k = len(v)
            if k > 1:
                m = v.mean()
                ys.append(m + np.sqrt(k / (k - 1)) * (v[rng.integers(0, k, k)] - m))
            else:
                ys.append(v + sd * rng.standard_normal(1))
        noise = sd * rng.standard_t(dof)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                rep = fit_loss_n(N, np.exp(np.concatenate(ys)))
                value = rep.alpha_N * (np.log(rep.N_c) - lnN0) + noise  # ln of eq 1.1 at N0, plus seed noise
        except NotEnoughData:
            failed += 1
            continue
        if np.isfinite(value):
            draws.append(float(value))
        else:
            failed += 1
    return draws, failed


def _final_analytic(x, y, x0: float, ln_pred: float, law, sd: float, dof: int, confidence: float):
    """Prediction interval of one new seed's final loss from the log-log regression of eq 1.1.

    ln L0 ± t · sqrt(sd² + s² (1/n + (x0 − x̄)²/Sxx)), x = ln N, s the residual standard deviation of
    the fit (n − 2 degrees of freedom), sd the seed noise, t the Student quantile at the smaller of
    the two degrees of freedom (the usual regression prediction interval when sd = s). None below 3
    runs.
    """
    from scipy.stats import t

    n = len(x)
    df = min(dof, n - 2)
    if df < 1:
        return None
    s = law.rms * np.sqrt(n / (n - 2))
    var = sd**2 + s**2 * (1 / n + (x0 - x.mean()) ** 2 / float(((x - x.mean()) ** 2).sum()))
    half = float(t.ppf(0.5 + confidence / 2, df) * np.sqrt(var))
    return [float(np.exp(ln_pred - half)), float(np.exp(ln_pred + half))]


def _curve_heldout(
    train: list[Curve], held: Curve, joint, n_levels: int, residual: str
) -> tuple[dict, tuple[str, ...]]:
    """Steps 1-3 refitted on ``train``; the held-out run's curve predicted by eq 1.6 (and 5.4)."""
    keep = held.after_warmup()
    if not keep.any():
        raise NotEnoughData(f"held-out run {held.run_id} has no evaluation after warmup")
    refit = _core(train, joint=joint, n_levels=n_levels, residual=residual)
    k = refit.constants
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
    curve = {
        "run_id": held.run_id,
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
    }
    return curve, refit.notes
