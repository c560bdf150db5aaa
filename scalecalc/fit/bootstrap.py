"""Bootstrap replicates for the parametric forms, batched and spread over all cores.

Each replicate resamples the points with replacement (multinomial counts, so a replicate is a
weight vector over the original points) and refits from warm starts: the full-data optimum, the
other distinct local optima the grid search found, and the grid starts that reached the best
basin. All (replicate, start) pairs of a chunk are one batch of the LM optimiser
(:func:`scalecalc.fit.optim.batched_lm`, run to a 1e-9 step tolerance: on the Epoch data its end
points agree with an L-BFGS-B polish to 1e-8); a replicate whose best start did not converge is
finished with L-BFGS-B. Chunks run in a ``ProcessPoolExecutor``. The counts are drawn up front from
``numpy.random.default_rng(seed)``, so results do not depend on the number of workers.
Warm starts instead of the full 4500-start grid per replicate are an approximation: a
replicate whose optimum lies in a basin none of the starts reach would be missed.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from scalecalc.fit.optim import batched_lm, polish

INLINE_BELOW = 64  # replicates; smaller jobs are not worth starting processes for


def resample_counts(n: int, K: int, seed: int) -> np.ndarray:
    """(K, n) multiplicities of each point in K bootstrap resamples of n points."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=K).astype(float)


def _chunk(args):
    model, X, y, counts, starts, objective, delta = args
    R, S0 = len(counts), len(starts)
    theta0 = np.tile(starts, (R, 1))
    cnt = np.repeat(counts, S0, axis=0)
    # Stage 1 (single precision, a few iterations): which start leads for each replicate.
    res = batched_lm(model, theta0, X, y, cnt, objective=objective, delta=delta, max_iter=25, dtype=np.float32)
    pick = np.argmin(res.f.reshape(R, S0), axis=1)
    lead = np.arange(R) * S0 + pick
    # Stage 2 (double precision): the leader of each replicate to convergence.
    fin = batched_lm(
        model, res.theta[lead], X, y, counts, objective=objective, delta=delta, max_iter=300, lam0=res.lam[lead]
    )
    out, conv, nfev = fin.theta, fin.converged, res.nfev + fin.nfev
    for i in np.flatnonzero(~conv):  # rare: finish with L-BFGS-B
        out[i], _, _, nf, _ = polish(model, out[i], X, y, counts[i], objective=objective, delta=delta, maxiter=500)
        nfev += nf
    return out, nfev


def bootstrap_parametric(model, X, y, starts, *, K, seed, objective, delta, workers=None, counts=None, progress=None):
    """Refit K resamples; returns (thetas (K, P), total nfev).

    ``counts`` (K, n) gives each replicate's point weights (default: rows resampled with
    replacement); ``progress("bootstrap", done, K)`` is called as chunks finish.
    """
    if counts is None:
        counts = resample_counts(y.size, K, seed)
    workers = os.cpu_count() or 1 if workers is None else max(1, int(workers))
    if K < INLINE_BELOW or workers == 1:
        out = _chunk((model, X, y, counts, starts, objective, delta))
        if progress:
            progress("bootstrap", K, K)
        return out
    n_chunks = min(K, 4 * workers)  # a few chunks per worker evens out slow chunks
    parts = np.array_split(np.arange(K), n_chunks)
    jobs = [(model, X, y, counts[p], starts, objective, delta) for p in parts]
    results, done = [], 0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for p, r in zip(parts, pool.map(_chunk, jobs)):
            results.append(r)
            done += len(p)
            if progress:
                progress("bootstrap", done, K)
    return np.concatenate([r[0] for r in results]), sum(r[1] for r in results)
