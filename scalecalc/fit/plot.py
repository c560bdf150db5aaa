"""``--plot``: a figure of the fit (matplotlib from the ``plot`` extra, imported lazily).

chinchilla/kaplan: observed vs fitted loss against N, coloured by compute, and the residuals.
isoflop: the IsoFLOP curves with their minima, the fitted frontier N* = G·C**a, residuals.
envelope: the learning curves, the envelope's N*(C) and the fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scalecalc.errors import UsageError, require


def plot_fit(result, path) -> Path:
    """Draw ``result`` and save it to ``path`` (format from the suffix: png, pdf, svg)."""
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"--plot: directory {str(path.parent)!r} does not exist; create it first")
    if result.form == "isoflop":
        fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.2))
        _isoflop(result, ax, ax2, ax3)
    else:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        (_envelope if result.form == "envelope" else _parametric)(result, ax, ax2)
    fig.suptitle(f"scalecalc fit --form {result.form}: {Path(result.source).name}")
    fig.tight_layout()
    from scalecalc.validate.paths import atomic_write

    try:  # written whole or not at all (a failing savefig must leave no partial file)
        atomic_write(
            path,
            lambda f: fig.savefig(f, dpi=120, format=path.suffix.lstrip(".").lower() or "png"),
            mode="wb",
            option="--plot",
        )
    finally:
        plt.close(fig)
    return path


def _parametric(result, ax, ax2):
    runs = result.details.get("runs")
    resid = result.details["residuals"]
    if runs is not None:
        sc = ax.scatter(runs.params, runs.loss, c=np.log10(runs.flops), s=12, cmap="viridis")
        ax.scatter(runs.params, runs.loss * np.exp(resid), s=6, marker="x", color="k", label="fitted")
        ax.figure.colorbar(sc, ax=ax, label="log10 C (FLOPs)")
        ax2.scatter(runs.params, resid, s=10)
    ax.set(xscale="log", yscale="log", xlabel="N (parameters)", ylabel="loss (nats/token)")
    ax.legend()
    ax2.axhline(0, color="k", lw=0.8)
    ax2.set(xscale="log", xlabel="N (parameters)", ylabel="log L_fit - log L_obs")


def _isoflop(result, ax, ax2, ax3):
    runs, groups = result.details["points"], result.details["groups"]
    cmap = __import__("matplotlib").colormaps["viridis"]
    for i, (_budget, idx) in enumerate(groups):
        col = cmap(i / max(1, len(groups) - 1))
        ax.scatter(runs.params[idx], runs.loss[idx], s=10, color=col)
        m = result.details["minima"][i]
        if np.isfinite(m["params"]):
            ax.scatter([m["params"]], [m["loss"]], marker="*", s=80, color=col, edgecolor="k")
    ax.set(xscale="log", xlabel="N (parameters)", ylabel="loss", title="IsoFLOP curves and minima")
    used = [m for m in result.details["minima"] if m["used"]]
    C = np.array([m["compute"] for m in used])
    ax2.scatter(C, [m["params"] for m in used], label="N* (minima)")
    grid = np.geomspace(C.min(), C.max(), 50)
    p = result.params
    ax2.plot(grid, p["G"] * grid ** p["a"], label=f"N* = {p['G']:.3g} C^{p['a']:.3f}")
    ax2.set(xscale="log", yscale="log", xlabel="C (FLOPs)", ylabel="N*", title="Frontier")
    ax2.legend()
    resid = np.log([m["params"] for m in used]) - np.log(p["G"] * C ** p["a"])
    ax3.axhline(0, color="k", lw=0.8)
    ax3.scatter(C, resid)
    ax3.set(xscale="log", xlabel="C (FLOPs)", ylabel="log N* - log fit", title="Residuals")


def _envelope(result, ax, ax2):
    for x, yl, _, _ in result.details["curves"]:
        ax.plot(np.exp(x), np.exp(yl), lw=0.8)
    env = result.details["envelope"]
    ax.set(xscale="log", yscale="log", xlabel="C (FLOPs)", ylabel="loss", title="Learning curves")
    ax2.scatter(env["compute"], env["params"], s=6, label="envelope N*")
    p = result.params
    ax2.plot(env["compute"], p["G"] * env["compute"] ** p["a"], color="k", label=f"N* = {p['G']:.3g} C^{p['a']:.3f}")
    ax2.set(xscale="log", yscale="log", xlabel="C (FLOPs)", ylabel="N*")
    ax2.legend()
