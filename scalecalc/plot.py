"""Figures (the ``plot`` extra): IsoFLOP curve of a plan, and every law's frontier.

matplotlib is imported inside each function with the Agg backend, so nothing else pays for it;
each file is written to a temporary name and renamed, so a figure is written whole or not at all.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from scalecalc.errors import UsageError, require


def _pyplot():
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, option: str) -> None:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UsageError(f"{option}: {path} must end in .png, .pdf or .svg")
    if not path.parent.exists():
        raise UsageError(f"{option}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix, prefix=".scalecalc-")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a figure is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    announce_written(path)


def current_umask() -> int:
    """The process umask (read by setting and restoring it: POSIX has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def announce_written(path) -> None:
    """Every file the tool writes is reported as one ``wrote PATH`` line on stderr."""
    import sys

    sys.stderr.write(f"wrote {path}\n")


def plot_plan(plan, path: str | Path) -> None:
    """The IsoFLOP curve L(N, C/FLOPs_per_token(N)) at every budget, its optimum and the shape."""
    from scalecalc.planner import _Model  # the same law-under-convention the plan used

    law = plan.law
    if law.loss is None:
        raise UsageError(f"--plot: law {law.name} defines no loss, so it has no IsoFLOP curve; plot a law with L(N, D)")
    plt = _pyplot()
    model = _Model(law, plan.query)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    blocks = plan.blocks
    for i, (c, n_opt, l_opt) in enumerate(zip(plan.compute.tolist(), plan.params.tolist(), plan.loss.tolist())):
        n = np.geomspace(n_opt / 30, n_opt * 30, 200)
        loss = model.loss(n, c / model.flops_per_token(n), law.constants)
        color = f"C{i % 10}"
        ax.semilogx(n, loss, color=color, label=f"C = {c:.3g} FLOPs ({plan.convention})")
        ax.plot([n_opt], [l_opt], "o", color=color, label=f"optimum N* = {n_opt:.3g}" if i == 0 else None)
        if i < len(blocks) and "shape" in blocks[i]:
            shape = blocks[i]["shape"]
            n_shape = float(shape["params"])
            y = model.loss(np.array([n_shape]), c / model.flops_per_token(np.array([n_shape])), law.constants)
            ax.plot(
                [n_shape],
                y,
                "s",
                color=color,
                label=f"shape {shape['n_layer']}x{shape['d_model']} ({n_shape:.3g} params)" if i == 0 else None,
            )
    ax.set_xlabel(f"parameters N ({law.params_kind.replace('_', '-')})")
    ax.set_ylabel("predicted loss (nats/token)")
    ax.set_title(f"IsoFLOP curve: {law.title}")
    ax.legend(fontsize=7 if len(plan.compute) > 3 else None)
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path, "--plot")
    plt.close(fig)


def plot_frontiers(rows: list[dict], budgets: list[float], path: str | Path) -> None:
    """N*(C) and D*(C) of each law over the compute range of ``rows``, budgets marked."""
    plt = _pyplot()
    fig, (ax_n, ax_d) = plt.subplots(1, 2, figsize=(11, 4.5))
    for law in dict.fromkeys(r["law"] for r in rows):
        mine = sorted((r["compute"], r["params"], r["tokens"]) for r in rows if r["law"] == law)
        c, n, d = (np.array(x, dtype=float) for x in zip(*mine))
        ax_n.loglog(c, n, label=law)
        ax_d.loglog(c, d, label=law)
    for ax, what in ((ax_n, "N* (parameters)"), (ax_d, "D* (tokens)")):
        for b in budgets:
            ax.axvline(b, color="k", ls=":", lw=1)
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ax_n.legend(fontsize=7)
    fig.suptitle("Compute-optimal frontiers of the published laws (dotted: your budget)")
    _save(fig, path, "--plot")
    plt.close(fig)
