"""The blocks around an allocation: shape, hyperparameters, hardware, inference, data.

:func:`attach` completes a :class:`~scalecalc.planner.Plan` with per-budget blocks (plain dicts with
stable keys, README "JSON keys"): ``shape`` (an architecture with N* parameters and its exact
FLOPs), ``hyperparameters`` (batch size, learning rate, warmup, beta2, steps, critical batch),
``hardware`` (GPU-hours, wall clock and dollars, with ``--gpu``), ``inference`` (the Sardana et al.
2024 inference-aware optimum, with ``--inference-tokens``) and ``data_constrained`` (Muennighoff
et al. 2023, with ``--unique-tokens``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scalecalc import flops as flopslib
from scalecalc import hardware, hparams
from scalecalc.planner import BlockOptions, Plan

MAX_ROWS = 1000  # designing a discrete shape per budget costs ~1-7 ms; bulk queries skip the blocks


def attach(plan: Plan, options: BlockOptions) -> Plan:
    """``plan`` with its blocks and their warnings, or with a note when it has over MAX_ROWS rows."""
    if len(plan) > MAX_ROWS:
        note = f"shape, hyperparameter and hardware blocks are omitted for more than {MAX_ROWS} budgets"
        return dataclasses.replace(plan, notes=(*plan.notes, note))
    blocks, added = build(plan, options)
    warnings = tuple((*row, *(w for w in extra if w not in row)) for row, extra in zip(plan.warnings, added))
    return dataclasses.replace(plan, blocks=tuple(blocks), warnings=warnings)


def build(plan: Plan, options: BlockOptions) -> tuple[list[dict], list[list[str]]]:
    """The blocks for every row of ``plan`` (one dict per row) and the warnings they add."""
    n = len(plan)
    blocks: list[dict] = [{} for _ in range(n)]
    warnings: list[list[str]] = [[] for _ in range(n)]
    shapes = _shapes(plan, options)
    _put(blocks, "shape", shapes)
    for row, shape in zip(warnings, shapes):
        if abs(shape["params_deviation"]) > 0.02:
            row.append(
                f"--shape-rule {options.shape_rule}: the nearest shape has {shape['params_deviation']:+.0%} of N* "
                f"parameters; "
                "this rule's table does not reach this size (use --shape-rule aspect or llama)"
            )
    hp, notes = _hyperparameters(plan, options)
    _put(blocks, "hyperparameters", hp)
    for row in warnings:
        row.extend(notes)
    if options.gpu:
        _put(blocks, "hardware", _hardware(plan, options))
    if options.inference_tokens:
        block, notes = _inference(plan, options)
        _put(blocks, "inference", block)
        for row in warnings:
            row.extend(notes)
    if options.unique_tokens:  # also under muennighoff2023, whose plan is this optimum (README)
        block, per_row = _data(plan, options)
        _put(blocks, "data_constrained", block)
        for row, extra in zip(warnings, per_row):
            row.extend(extra)
    return blocks, warnings


def _put(blocks: list[dict], key: str, values: list[dict] | None) -> None:
    if values is not None:
        for block, value in zip(blocks, values):
            block[key] = value


def _rows(columns: dict) -> list[dict]:
    """{'a': array(n), 'b': array(n)} -> [{'a': .., 'b': ..}, ...] with plain floats."""
    arrays = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in columns.items()}
    n = max(len(v) for v in arrays.values())
    lists = {k: np.broadcast_to(v, (n,)).tolist() for k, v in arrays.items()}
    return [{k: (None if x != x else x) for k, x in zip(lists, values)} for values in zip(*lists.values())]


# -- shape --------------------------------------------------------------------------------------


def _shapes(plan: Plan, options: BlockOptions) -> list[dict]:
    rule = plan.shape_rule
    kind = "non_embedding" if plan.law.params_kind == "flops_per_token" else plan.law.params_kind
    out = []
    for n, fpt in zip(plan.params.tolist(), plan.flops_per_token.tolist()):
        arch = flopslib.design_shape(
            n, options.shape_rule, n_kind=kind, vocab=rule.vocab, seq_len=rule.seq_len, aspect_ratio=rule.aspect_ratio
        )
        exact = flopslib.n_params(arch, kind)
        out.append(
            {
                "rule": options.shape_rule,
                "n_layer": arch.n_layer,
                "d_model": arch.d_model,
                "n_heads": arch.n_heads,
                "kv_heads": arch.kv_heads,
                "head_dim": arch.head_dim,
                "d_ff": arch.d_ff,
                "mlp": arch.mlp,
                "vocab": arch.vocab,
                "seq_len": arch.seq_len,
                "tied": arch.tied,
                "params": exact,
                "params_kind": kind,
                "params_total": flopslib.n_params(arch, "total"),
                "params_deviation": exact / n - 1.0,
                "flops_per_token": flopslib.training_flops_per_token(arch, plan.convention, kind),
                "flops_per_token_law": fpt,
            }
        )
    return out


# -- hyperparameters ----------------------------------------------------------------------------


def _hyperparameters(plan: Plan, options: BlockOptions) -> tuple[list[dict], list[str]]:
    law, rule = plan.law, plan.shape_rule
    loss = np.where(np.isfinite(plan.loss), plan.loss, np.nan)
    name = options.hparams or ("law" if _law_has_rules(law) else "porian2024")
    if name == "law":
        hp = _law_rules(plan, rule.seq_len, loss)
    else:
        hp = hparams.recommend(
            hparams.get_rule(name),
            N=plan.params,
            C=plan.compute,
            L=loss if np.all(np.isfinite(loss)) else None,
            seq_len=rule.seq_len,
            tokens=plan.tokens,
        )
    columns = {
        f.name: getattr(hp, f.name)
        for f in dataclasses.fields(hp)
        if f.name not in ("rule", "source", "notes", "seq_len")
    }
    rows = _rows(columns)
    for row in rows:
        row.update({"rule": hp.rule, "source": hp.source, "seq_len": hp.seq_len})
    return rows, list(hp.notes)


def _law_has_rules(law) -> bool:
    return bool(law.hyperparameters) or law.critical_batch is not None


def _law_rules(plan: Plan, seq_len: int, loss):
    """The law file's own rules: batch_size and learning_rate as functions of N or C (Kaplan:
    train at the critical batch B_crit(L), §5.1)."""
    law = plan.law
    env = {"N": plan.params, "C": plan.compute, "D": plan.tokens, "L": loss}
    values = {}
    if "batch_size" in law.hyperparameters:
        values["batch_tokens"] = law.hyperparameter("batch_size", **env)
    elif law.critical_batch is not None:
        values["batch_tokens"] = law.evaluate("critical_batch", L=loss)
    else:
        values["batch_tokens"] = hparams.recommend("porian2024", N=plan.params, seq_len=seq_len).batch_tokens
    if "learning_rate" in law.hyperparameters:
        # from_values leaves a non-positive rate undefined, with a note (Kaplan eq. D.1 hits zero
        # at N = 1.2e10, docs/reference.md §1.8)
        lr = np.asarray(law.hyperparameter("learning_rate", **env), dtype=float)
        values["peak_lr"] = np.where(lr > 0, lr, np.nan)
    bstar = law.constants.get("Bstar", hparams.KAPLAN_BSTAR)
    return hparams.from_values(
        f"{law.name} (law file)",
        law.source,
        values,
        seq_len=seq_len,
        tokens=plan.tokens,
        L=loss if np.all(np.isfinite(loss)) else None,
        Bstar=bstar,
    )


# -- hardware, inference, data ------------------------------------------------------------------


def _hardware(plan: Plan, options: BlockOptions) -> list[dict]:
    assert options.gpu is not None  # build() adds this block only with a GPU
    gpu = hardware.get_gpu(options.gpu)
    train = hardware.training_time(
        plan.compute,
        gpu,
        gpus=options.gpus,
        mfu=options.mfu,
        dtype=options.dtype,
        usd_per_gpu_hour=options.usd_per_gpu_hour,
    )
    columns = {f"train_{k}": train[k] for k in ("gpu_hours", "wall_clock_hours", "wall_clock_days", "usd")}
    if options.inference_tokens:
        flops = 2.0 * plan.params * options.inference_tokens  # 2N FLOPs per generated token
        infer = hardware.training_time(
            flops,
            gpu,
            gpus=options.gpus,
            mfu=options.inference_mfu or options.mfu,
            dtype=options.dtype,
            usd_per_gpu_hour=options.usd_per_gpu_hour,
        )
        columns.update(
            {"inference_flops": flops, "inference_gpu_hours": infer["gpu_hours"], "inference_usd": infer["usd"]}
        )
    rows = _rows(columns)
    fixed = {
        k: train[k] for k in ("gpu", "gpus", "mfu", "dtype", "peak_flops_per_s", "usd_per_gpu_hour", "price_assumed")
    }
    fixed["gpu_title"] = gpu.title
    fixed["inference_mfu"] = options.inference_mfu or options.mfu if options.inference_tokens else None
    for row in rows:
        row.update(fixed)
    return rows


def _inference(plan: Plan, options: BlockOptions) -> tuple[list[dict] | None, list[str]]:
    from scalecalc import inference

    law = plan.law
    if law.form != "chinchilla" or law.loss is None:
        return None, [
            f"--inference-tokens: the inference-aware optimum needs a law of the form E + A/N**alpha + B/D**beta; "
            f"{law.name} is not (inference cost is still in the hardware block)"
        ]
    k = plan.flops_per_token[0] / plan.params[0]
    mfu = {}
    if options.inference_mfu:
        mfu = {"mfu_train": options.mfu, "mfu_inference": options.inference_mfu}
    result = inference.inference_optimal(law.constants, plan.loss, options.inference_tokens, k=k, **mfu)
    # one meaning per key: the same keys for both models, each model in its own block
    keys = ("params", "train_tokens", "train_flops", "inference_flops", "total_flops")
    aware = _rows({**{key: getattr(result, key) for key in keys}, "tokens_per_param": result.tokens_per_param})
    optimal = _rows(
        {
            **{key: getattr(result, f"{key}_0") for key in keys},
            "tokens_per_param": result.train_tokens_0 / result.params_0,
        }
    )
    rows = _rows({key: getattr(result, key) for key in ("params_ratio", "tokens_ratio", "cost_saving")})
    for row, a, o in zip(rows, aware, optimal):
        row.update(
            {
                "objective": result.objective,
                "inference_tokens": float(options.inference_tokens or 0.0),
                "inference_aware": a,
                "compute_optimal": o,
            }
        )
    return rows, list(result.warnings)


def _data(plan: Plan, options: BlockOptions) -> tuple[list[dict], list[list[str]]]:
    from scalecalc import datalimit

    u = options.unique_tokens
    assert u is not None  # build() adds this block only with unique tokens
    result = datalimit.optimal(plan.compute, u)
    rows = _rows(
        {
            "epochs": plan.tokens / u,
            "effective_tokens": datalimit.effective_data(plan.tokens, u),
            "optimal_params": result.params,
            "optimal_tokens": result.tokens,
            "optimal_epochs": result.epochs,
            "optimal_loss": result.loss,
            "loss_limit": result.loss_limit,
        }
    )
    for row in rows:
        row.update({"unique_tokens": float(u), "law": "muennighoff2023"})
    per_row = [list(w) for w in result.warnings] if result.warnings else [[] for _ in rows]
    return rows, per_row
