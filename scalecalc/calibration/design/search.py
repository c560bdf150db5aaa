"""Search sweep shapes for the one that pins the target's N*, D* and loss down best.

A candidate (:class:`SweepShape`) is an IsoFLOP grid: ``n_budgets`` FLOP budgets a factor
``budget_ratio`` apart, ``sizes`` model sizes per budget spread log-evenly over N*(C)/span ..
N*(C)·span around the prior's optimum at that budget (tokens D = C/(6N)), each trained with
``seeds`` seeds. Given the calibration budget, the largest budget is whatever makes the whole
grid cost exactly that: cost = seeds · sizes · Σ C_i (FLOPs, C = 6 N D).

Each candidate is simulated (``simulate.py``) and scored by the width of its predicted interval
of ln N* at the target (at a fixed C, ln D* = ln(C/6) − ln N* has the same width). The search is
successive halving: every feasible candidate with a few replicates, the best quarter with more,
the best three with the full count; the winner's interval is reported from those.

The trade-off table reruns the best shapes at other budgets (a factor 4 apart); a sweep that
costs less is always affordable on a larger budget, so the table reports at each budget the best
interval of any budget up to it and never widens as the budget grows.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import numpy as np

from scalecalc.errors import UsageError

from .prior import Prior
from .simulate import SEED_NOISE, noise_draw, simulate

MIN_PARAMS = 1e6  # smallest model worth calibrating on (below it, embeddings and noise dominate)
GRID = {  # the default search: 3 x 2 x 3 x 2 x 2 = 72 shapes
    "n_budgets": (3, 4, 5),
    "budget_ratio": (3.0, 10.0),
    "sizes": (5, 7, 9),
    "span": (4.0, 10.0),
    "seeds": (1, 2),
}
ROUNDS = (24, 96)  # replicates of the halving rounds; the final round uses ``replicates``
KEEP = (0.25, 3)  # fraction kept after round 1, count kept after round 2
TRADEOFF_FACTORS = (1 / 16, 1 / 4, 1.0, 4.0, 16.0)


@dataclass(frozen=True)
class SweepShape:
    """One candidate sweep design (see the module docstring)."""

    n_budgets: int
    budget_ratio: float
    sizes: int
    span: float
    seeds: int

    def label(self) -> str:
        return (
            f"{self.n_budgets} budgets x{self.budget_ratio:g}, {self.sizes} sizes "
            f"±{self.span:g}x, {self.seeds} seed{'s' * (self.seeds > 1)}"
        )

    def budgets(self, cost_flops: float) -> np.ndarray:
        """The FLOP budgets (ascending) whose grid costs ``cost_flops`` in all."""
        rel = self.budget_ratio ** -np.arange(self.n_budgets)[::-1]  # ..., 1/r, 1
        return cost_flops / (self.seeds * self.sizes * rel.sum()) * rel

    def runs(self, prior: Prior, cost_flops: float) -> SweepRuns:
        N, D, C, seed = [], [], [], []
        for c in self.budgets(cost_flops):
            n_opt = float(prior.optimum(c)[0][0])
            for f in np.geomspace(1 / self.span, self.span, self.sizes):
                for s in range(self.seeds):
                    N.append(n_opt * f)
                    D.append(c / (6 * n_opt * f))
                    C.append(c)
                    seed.append(s)
        return SweepRuns(self, cost_flops, np.array(N), np.array(D), np.array(C), np.array(seed))


@dataclass(frozen=True)
class SweepRuns:
    """The runs of a shape at a cost: parameters N, tokens D, budget C (FLOPs), seed index."""

    shape: SweepShape
    cost_flops: float
    N: np.ndarray
    D: np.ndarray
    C: np.ndarray
    seed: np.ndarray

    def rows(self) -> list[dict]:
        return [
            {"params": float(n), "tokens": float(d), "flops": float(c), "seed": int(s)}
            for n, d, c, s in zip(self.N, self.D, self.C, self.seed)
        ]


@dataclass
class Evaluated:
    """A candidate with its simulated outcome at the target."""

    runs: SweepRuns
    interval: dict
    replicates: int

    @property
    def width(self) -> float:
        """ln(N*_high / N*_low): the score (smaller is better; inf when no fit succeeded)."""
        lo, _, hi = self.interval["N"]
        return float(np.log(hi / lo)) if np.isfinite(lo) and lo > 0 else float("inf")

    def to_dict(self) -> dict:
        return {
            "shape": asdict(self.runs.shape),
            "label": self.runs.shape.label(),
            "cost_flops": self.runs.cost_flops,
            "runs": len(self.runs.N),
            "largest_budget": float(self.runs.C.max()),
            "params_range": [float(self.runs.N.min()), float(self.runs.N.max())],
            "replicates": self.replicates,
            "valid_fits": self.interval["valid"],
            "N_star": self.interval["N"],
            "D_star": self.interval["D"],
            "loss": self.interval["L"],
            "width_ln_N": self.width,
        }


@dataclass
class Design:
    """The search's answer: the best sweep, its runs, and the budget trade-off."""

    prior: Prior
    target_flops: float
    cost_flops: float
    confidence: float
    noise: float
    best: Evaluated
    tradeoff: list[dict] = field(default_factory=list)
    candidates: int = 0
    truth: tuple = ()  # the prior's own (N*, D*, L*) at the target


def shapes(grid: dict | None = None) -> list[SweepShape]:
    g = {**GRID, **(grid or {})}
    return [SweepShape(*v) for v in itertools.product(*(g[k] for k in GRID))]


def feasible(shape_list, prior: Prior, cost: float, target: float, min_params: float) -> list[SweepRuns]:
    """The shapes whose runs all have N >= min_params and stay below the target compute."""
    out = []
    for s in shape_list:
        runs = s.runs(prior, cost)
        if runs.N.min() >= min_params and runs.C.max() < target:
            out.append(runs)
    return out


def check_feasible(shape_list, prior, cost, target, min_params, cost_option: str) -> None:
    """One ``Error:`` line when no shape fits the budget or the target is too small."""
    if feasible(shape_list, prior, cost, target, min_params):
        return
    small = [s.runs(prior, cost) for s in shape_list]
    if all(r.N.min() < min_params for r in small):
        need = min(_min_cost(s, prior, min_params) for s in shape_list)
        raise UsageError(
            f"{cost_option}: {cost:.3g} FLOPs cannot pay for any sweep whose "
            f"models have at least {min_params:.3g} parameters; give at least "
            f"{need:.3g} FLOPs (or lower --min-params)"
        )
    largest = min(r.C.max() for r in small if r.N.min() >= min_params)
    raise UsageError(
        f"--target-compute: the target ({target:.3g} FLOPs) is not above the "
        f"calibration runs (largest budget {largest:.3g} FLOPs); give a larger "
        "target or a smaller calibration budget"
    )


def _min_cost(shape: SweepShape, prior: Prior, min_params: float) -> float:
    """Smallest cost at which the shape's smallest model, N*(C_1)/span at its smallest budget
    C_1, has ``min_params`` parameters (the closed-form optimum inverted)."""
    from .prior import compute_for_params

    smallest_budget = compute_for_params(prior, min_params * shape.span)
    return smallest_budget / shape.budgets(1.0)[0]


def evaluate(
    runs: SweepRuns, prior: Prior, target: float, eps, replicates: int, confidence: float, noise: float, progress=None
) -> Evaluated:
    out = simulate(prior, runs.N, runs.D, target, replicates=replicates, eps=eps, noise=noise, progress=progress)
    return Evaluated(runs, out.interval(confidence), replicates)


def work(n_candidates: int, replicates: int, tradeoff: bool) -> int:
    """Replicate fits the search will do (the progress bar's total)."""
    r1 = n_candidates
    r2 = max(1, int(np.ceil(KEEP[0] * r1)))
    r3 = min(KEEP[1], r2)
    total = r1 * ROUNDS[0] + r2 * ROUNDS[1] + r3 * replicates
    if tradeoff:
        total += (len(TRADEOFF_FACTORS) - 1) * r3 * ROUNDS[1]
    return total


def design(
    prior: Prior,
    target_flops: float,
    cost_flops: float,
    *,
    replicates: int = 400,
    confidence: float = 0.8,
    noise: float = SEED_NOISE,
    seed: int = 0,
    min_params: float = MIN_PARAMS,
    grid: dict | None = None,
    tradeoff: bool = True,
    cost_option: str = "--budget-flops",
    progress=None,
) -> Design:
    """Search sweep shapes (see the module docstring) and return the best with the trade-off.

    Parameters
    ----------
    prior : Prior
        The law simulated from (the truth of every replicate).
    target_flops : float
        Compute C of the training run being planned (FLOPs, C = 6 N D).
    cost_flops : float
        Calibration budget (FLOPs, C = 6 N D summed over the sweep's runs).
    replicates : int
        Simulations of the final round (the reported interval).
    confidence : float
        Coverage of the percentile intervals.
    noise : float
        σ of ln L between seeds.
    progress : callable(int), optional
        Called with the number of replicate fits just done.
    """
    all_shapes = shapes(grid)
    check_feasible(all_shapes, prior, cost_flops, target_flops, min_params, cost_option)
    cands = feasible(all_shapes, prior, cost_flops, target_flops, min_params)
    eps = noise_draw(max(replicates, *ROUNDS), seed)

    def run_round(items, reps):
        scored = [evaluate(r, prior, target_flops, eps, reps, confidence, noise, progress) for r in items]
        return sorted(scored, key=lambda e: e.width)

    first = run_round(cands, ROUNDS[0])
    second = run_round([e.runs for e in first[: max(1, int(np.ceil(KEEP[0] * len(first))))]], ROUNDS[1])
    finalists = [e.runs for e in second[: KEEP[1]]]
    final = run_round(finalists, replicates)
    best = final[0]
    truth = tuple(float(x[0]) for x in prior.optimum(target_flops))
    result = Design(prior, target_flops, cost_flops, confidence, noise, best, candidates=len(cands), truth=truth)
    if tradeoff:
        pool = [e.runs.shape for e in first]  # ranked: the best shapes first
        result.tradeoff = _tradeoff(result, final, pool, eps, min_params, progress)
    return result


def _tradeoff(result: Design, final, pool, eps, min_params, progress) -> list[dict]:
    """Best interval per budget (factors of the calibration budget), never wider as it grows.

    At each budget the best ``KEEP[1]`` shapes of the first round that fit it are simulated
    (the calibration budget itself is the final round: the reported best)."""
    prior, target = result.prior, result.target_flops
    rows = []
    for factor in TRADEOFF_FACTORS:
        cost = result.cost_flops * factor
        if factor == 1.0:
            scored = final[:1]
        else:
            runs = [r for r in (s.runs(prior, cost) for s in pool) if r.N.min() >= min_params and r.C.max() < target][
                : KEEP[1]
            ]
            scored = [
                evaluate(r, prior, target, eps, ROUNDS[1], result.confidence, result.noise, progress) for r in runs
            ]
            if progress is not None and len(runs) < KEEP[1]:
                progress((KEEP[1] - len(runs)) * ROUNDS[1])  # none to run: count them done
        best = min(scored, key=lambda e: e.width) if scored else None
        rows.append({"factor": factor, "cost_flops": cost, "evaluated": best})
    running = None
    out = []
    for row in rows:  # the best sweep affordable on this budget: any evaluated at or below it
        e = row["evaluated"]
        if e is not None and (running is None or e.width <= running.width):
            running = e
        if running is None:
            continue
        out.append(
            {
                "budget_factor": row["factor"],
                "budget_flops": row["cost_flops"],
                "sweep_cost_flops": running.runs.cost_flops,
                **running.to_dict(),
            }
        )
    return out
