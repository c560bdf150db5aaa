"""TensorBoard event files: one run per folder of ``events.out.tfevents.*`` files.

Read with TensorBoard's own ``EventAccumulator`` (the ``tensorboard`` extra), never a
hand-written protobuf parser. Scalars written by PyTorch's ``SummaryWriter.add_scalar`` and
TF2's ``tf.summary.scalar`` (stored as tensors) are both read. The loss is the scalar named by
``--tag`` (default: the first of ``val/loss``, ``val_loss``, ``eval/loss``, ``loss`` ... found);
``tokens``, ``lr`` and ``train/loss`` tags are picked up when present.
"""

from __future__ import annotations

from pathlib import Path

from scalecalc.errors import require

from .curve import ImportInputError, RawCurve
from .table import ALIASES, norm

EVENT_GLOB = "events.out.tfevents.*"


def is_event_file(path: Path) -> bool:
    return path.is_file() and path.name.startswith("events.out.tfevents.")


def run_folders(source: Path) -> list[Path]:
    """Folders under ``source`` (itself included) that hold event files, sorted."""
    if is_event_file(source):
        return [source.parent]
    return sorted({p.parent for p in source.rglob(EVENT_GLOB) if p.is_file()})


def _scalars(folder: Path) -> dict[str, tuple[list, list, list]]:
    """tag -> (steps, values, wall times) of every scalar in the folder's event files."""
    require("tensorboard", "tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        TENSORS,
        EventAccumulator,
    )
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0, TENSORS: 0})
    try:
        acc.Reload()
    except Exception as exc:  # the reader's own errors (corrupt records, bad protobufs)
        raise ImportInputError(
            f"{folder}: cannot read its TensorBoard event files ({exc}); "
            "remove the damaged file or point at another folder"
        ) from None
    tags = acc.Tags()
    out = {}
    for tag in tags.get("scalars", []):
        events = acc.Scalars(tag)
        out[tag] = ([e.step for e in events], [e.value for e in events], [e.wall_time for e in events])
    for tag in tags.get("tensors", []):
        events = acc.Tensors(tag)
        try:
            values = [float(tensor_util.make_ndarray(e.tensor_proto).reshape(-1)[0]) for e in events]
        except (ValueError, TypeError, IndexError):
            continue  # not a scalar summary (histograms, text)
        out.setdefault(tag, ([e.step for e in events], values, [e.wall_time for e in events]))
    return out


def _pick(tags: dict, role: str) -> str | None:
    normed = {norm(t): t for t in tags}
    return next((normed[a] for a in ALIASES[role] if a in normed), None)


def read_tensorboard(source: Path, tag: str | None) -> list[RawCurve]:
    """The curves of every run folder under ``source``, named by their path relative to it."""
    folders = run_folders(source)
    if not folders:
        raise ImportInputError(
            f"{source}: no TensorBoard event files ({EVENT_GLOB}) here; point at a log folder or a CSV/JSONL/W&B export"
        )
    root = source if source.is_dir() else source.parent
    curves = []
    for folder in folders:
        scalars = _scalars(folder)
        loss_tag = tag if tag is not None else _pick(scalars, "loss")
        if loss_tag not in scalars:
            found = ", ".join(sorted(scalars)) or "none (empty or damaged event files)"
            what = f"tag {tag!r}" if tag is not None else "loss tag"
            raise ImportInputError(f"{folder}: no scalar {what}; tags found: {found}; choose the loss with --tag")
        steps, loss, wall = scalars[loss_tag]
        t0 = min(wall) if wall else 0.0
        curve = RawCurve(
            _name(folder, root), folder, list(map(float, steps)), list(loss), wall_time=[w - t0 for w in wall]
        )
        at = {s: i for i, s in enumerate(steps)}
        for role, attr in (("tokens", "tokens"), ("lr", "lr"), ("train_loss", "train_loss")):
            other = _pick(scalars, role)
            if other is not None and other != loss_tag:
                by_step = dict(zip(scalars[other][0], scalars[other][1]))
                setattr(curve, attr, [by_step.get(s) for s in at])
        curves.append(curve)
    return curves


def _name(folder: Path, root: Path) -> str:
    rel = folder.relative_to(root).as_posix() if folder != root else ""
    return rel or root.resolve().name
