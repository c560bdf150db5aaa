"""``scalecalc plan``, ``compare``, ``laws`` and ``formula``: the planning commands.

Each command builds its inputs, calls one core function and renders the result. Only numpy,
yaml and the law engine are imported on the path of a plain ``plan`` query (sympy only for
``formula``, matplotlib only for ``--plot``).
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from scalecalc.cli import complete
from scalecalc.cli.base import app
from scalecalc.cli.choices import (
    CONVENTIONS,
    SHAPE_RULES,
    check_flops,
    check_gpu,
    check_hparams,
    check_shape_rule,
    hparams_names,
    listed,
)
from scalecalc.cli.common import Column, FormatOption, JsonOption, OutputFormat, QuietOption, emit, resolve_format
from scalecalc.errors import UsageError
from scalecalc.quantities import format_count, format_sci

Many = Optional[list[str]]
LawOption = Annotated[
    str,
    typer.Option(
        "--law", "-l", help="Built-in law name or a law YAML file (see `scalecalc laws`).", autocompletion=complete.laws
    ),
]
FlopsOption = Annotated[
    Optional[str],
    typer.Option(
        "--flops",
        help=f"FLOP convention to plan under (default: the law's own): {listed(CONVENTIONS)}.",
        callback=check_flops,
        autocompletion=complete.conventions,
    ),
]
VocabOption = Annotated[
    Optional[int],
    typer.Option("--vocab", min=1, help="Vocabulary size for shape-aware conventions (default: the law's)."),
]
SeqOption = Annotated[
    Optional[int],
    typer.Option("--seq-len", min=1, help="Sequence length for shape-aware conventions (default: the law's)."),
]
AspectOption = Annotated[
    Optional[float],
    typer.Option("--aspect-ratio", help="d_model / n_layer of the shape rule (default 128, or the law's)."),
]
UniqueOption = Annotated[
    Optional[str],
    typer.Option("--unique-tokens", help="Unique tokens available (data-constrained planning, e.g. 500B)."),
]


def _fmt_count(v) -> str:
    return format_count(v)


def _fmt_ci(v) -> str:
    return f"{format_count(v[0])}–{format_count(v[1])}" if v and None not in v else "-"


def _fmt_loss(v) -> str:
    return f"{v:.4f}"


def _fmt_ratio(v) -> str:
    return f"{v:.1f}"


PLAN_COLUMNS = [
    Column("Compute (FLOPs)", "compute", format_sci, wrap=False),
    Column("N*", "params", _fmt_count, wrap=False),
    Column("D* (tokens)", "tokens", _fmt_count, wrap=False),
    Column("D/N", "tokens_per_param", _fmt_ratio, wrap=False),
    Column("Loss", "loss", _fmt_loss, wrap=False),
]


def _budget(compute, params, tokens, loss, gpu_hours, usd, ratio, hw) -> tuple[str, object]:
    """Which query the options ask for, and its values; exactly one budget option is allowed."""
    import numpy as np

    from scalecalc.quantities import parse_values

    given = {
        k: v
        for k, v in (
            ("--compute", compute),
            ("--params", params),
            ("--tokens", tokens),
            ("--loss", loss),
            ("--gpu-hours", gpu_hours),
            ("--usd", usd),
        )
        if v
    }
    if len(given) > 1:
        raise UsageError(f"use just one budget option, not {' and '.join(given)}")
    if not given:
        raise UsageError(
            "give a budget: --compute 1e24, --params 70B, --tokens 1.4T, --loss 2.1, --gpu-hours or --usd (with --gpu)"
        )
    option, texts = next(iter(given.items()))
    if ratio is not None and option not in ("--compute", "--gpu-hours", "--usd"):
        raise UsageError(
            f"--tokens-per-param fixes D/N and needs a compute budget (--compute, --gpu-hours or --usd), not {option}"
        )
    if option == "--loss":
        from scalecalc.quantities import parse_number

        return "loss", np.asarray([parse_number(t, "--loss") for t in texts])
    values = parse_values(texts, option)
    if option in ("--gpu-hours", "--usd"):
        values = _hardware_compute(option, values, hw)
    kind = {"--compute": "compute", "--params": "params", "--tokens": "tokens"}.get(option, "compute")
    return ("ratio" if ratio is not None else kind), values


def _hardware_compute(option, values, hw):
    from scalecalc import hardware

    if not hw["gpu"]:
        raise UsageError(
            f"{option} needs --gpu NAME to convert time or money into FLOPs (see the GPU catalog in `scalecalc "
            f"plan --help`)"
        )
    gpu = hardware.get_gpu(hw["gpu"])
    key = "gpu_hours" if option == "--gpu-hours" else "usd"
    return hardware.budget_flops(gpu, **{key: values}, usd_per_gpu_hour=hw["price"], mfu=hw["mfu"], dtype=hw["dtype"])


@app.command("plan")
def plan_command(
    compute: Annotated[
        Many,
        typer.Option(
            "--compute", "-c", help="Compute budget in FLOPs (repeat, a log range 1e20:1e26:13, or - for stdin)."
        ),
    ] = None,
    params: Annotated[
        Many, typer.Option("--params", "-n", help="Model size N: the budget at which it is optimal, and its tokens.")
    ] = None,
    tokens: Annotated[
        Many,
        typer.Option("--tokens", "-d", help="Token count D: the budget at which it is optimal, and the model size."),
    ] = None,
    loss: Annotated[
        Many, typer.Option("--loss", help="Target loss (nats/token): the least compute that reaches it.")
    ] = None,
    tokens_per_param: Annotated[
        Optional[float],
        typer.Option(
            "--tokens-per-param", help="Fix D/N (over-training) at the compute budget; reports the loss penalty."
        ),
    ] = None,
    gpu_hours: Annotated[Many, typer.Option("--gpu-hours", help="Budget in GPU-hours (needs --gpu).")] = None,
    usd: Annotated[
        Many,
        typer.Option("--usd", help="Budget in US dollars (needs --gpu; price from --usd-per-gpu-hour or the catalog)."),
    ] = None,
    gpu: Annotated[
        Optional[str],
        typer.Option(
            "--gpu",
            help="GPU from the catalog (see `scalecalc gpus`: a100, h100-sxm, h100-pcie, h200, b200, mi300x, "
            "l40s, rtx-4090, ...).",
            callback=check_gpu,
            autocompletion=complete.gpus,
        ),
    ] = None,
    mfu: Annotated[
        float, typer.Option("--mfu", min=1e-6, max=1.0, help="Model FLOPs utilisation for time and cost.")
    ] = 0.4,
    usd_per_gpu_hour: Annotated[
        Optional[float],
        typer.Option("--usd-per-gpu-hour", help="Price per GPU-hour (default: the catalog's assumption)."),
    ] = None,
    dtype: Annotated[
        Optional[str],
        typer.Option(
            "--dtype",
            help="Peak-throughput dtype for the GPU (bf16, fp16, fp8, tf32, fp32; default: the GPU's training dtype).",
        ),
    ] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="Number of GPUs, for wall-clock time.")] = 1,
    shape_rule: Annotated[
        str,
        typer.Option(
            "--shape-rule",
            help=f"Architecture rule for the shape block: {listed(SHAPE_RULES)} (see docs/reference.md §15).",
            callback=check_shape_rule,
            autocompletion=complete.shape_rules,
        ),
    ] = "aspect",
    hparams_rule: Annotated[
        Optional[str],
        typer.Option(
            "--hparams",
            help=f"Hyperparameter rule: {listed(hparams_names())} (the law file's own; the default when it has rules).",
            callback=check_hparams,
            autocompletion=complete.hparams_rules,
        ),
    ] = None,
    inference_tokens: Annotated[
        Optional[str],
        typer.Option(
            "--inference-tokens",
            help="Lifetime inference tokens: adds inference cost and the inference-aware optimum (Sardana et al. "
            "2024).",
        ),
    ] = None,
    inference_mfu: Annotated[
        Optional[float], typer.Option("--inference-mfu", min=1e-6, max=1.0, help="MFU for inference (default: --mfu).")
    ] = None,
    brief: Annotated[
        bool,
        typer.Option(
            "--brief", help="Only the allocation: no shape, hyperparameter or hardware blocks (fast bulk queries)."
        ),
    ] = False,
    plot: Annotated[
        Optional[str],
        typer.Option(
            "--plot",
            help="Write a PNG of the IsoFLOP curve at the (first) budget, with the optimum and the chosen shape "
            "(needs scalecalc[plot]).",
        ),
    ] = None,
    law: LawOption = "besiroglu2024",
    flops: FlopsOption = None,
    unique_tokens: UniqueOption = None,
    vocab: VocabOption = None,
    seq_len: SeqOption = None,
    aspect_ratio: AspectOption = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Plan compute-optimal N and D (and the loss) for one or many budgets.

    Example:

        scalecalc plan --compute 1e24
        scalecalc plan --compute 1e20:1e26:7 --law hoffmann2022-a3 --json
        scalecalc plan --params 70B --law llama3
    """
    from scalecalc.laws import load_law
    from scalecalc.planner import BlockOptions, Query, plan
    from scalecalc.planner import shape_rule as continuous_rule  # --shape-rule is a parameter here
    from scalecalc.quantities import parse_number
    from scalecalc.validate import options, paths

    options.check(
        **{
            "--mfu": mfu,
            "--inference-mfu": inference_mfu,
            "--aspect-ratio": aspect_ratio,
            "--gpus": gpus,
            "--usd-per-gpu-hour": usd_per_gpu_hour,
            "--tokens-per-param": tokens_per_param,
            "--vocab": vocab,
            "--seq-len": seq_len,
        }
    )
    paths.check_outputs({"--plot": (plot, (".png", ".pdf", ".svg"))})
    law_obj = load_law(law)
    hw = {"gpu": gpu, "mfu": mfu, "price": usd_per_gpu_hour, "dtype": dtype}
    kind, values = _budget(compute, params, tokens, loss, gpu_hours, usd, tokens_per_param, hw)
    unique = parse_number(unique_tokens, "--unique-tokens") if unique_tokens else None
    blocks = (
        None
        if brief
        else BlockOptions(
            shape_rule=shape_rule,
            hparams=hparams_rule,
            gpu=gpu,
            gpus=gpus,
            mfu=mfu,
            dtype=dtype,
            usd_per_gpu_hour=usd_per_gpu_hour,
            inference_mfu=inference_mfu,
            inference_tokens=parse_number(inference_tokens, "--inference-tokens") if inference_tokens else None,
            unique_tokens=unique,
        )
    )
    query = Query(
        kind=kind,
        values=values,
        tokens_per_param=tokens_per_param,
        flops=flops,
        unique_tokens=unique,
        shape_rule=continuous_rule(law_obj, vocab=vocab, seq_len=seq_len, aspect_ratio=aspect_ratio),
        blocks=blocks,
    )
    result = plan(law_obj, query)
    if plot:
        from scalecalc.plot import plot_plan

        plot_plan(result, plot)
    _render_plan(result, resolve_format(fmt, as_json), quiet)


MAX_PRINTED_BLOCKS = 20  # recipe lines under the table; JSON and CSV carry every budget's blocks


def _render_plan(result, fmt: OutputFormat, quiet: bool = False) -> None:
    rows = result.rows()
    columns = list(PLAN_COLUMNS)
    if result.params_ci is not None:
        columns.insert(2, Column("N* 95% CI", "params_ci", _fmt_ci, wrap=False))
    if result.loss_ci is not None:
        columns.append(Column("Loss 95% CI", "loss_ci", lambda v: f"{v[0]:.4f}–{v[1]:.4f}"))
    if result.query.kind == "ratio" and result.loss_optimal is not None:
        columns += [
            Column("Optimal loss", "loss_optimal", _fmt_loss),
            Column("Compute overhead", "compute_overhead", lambda v: f"{v:.3f}x"),
        ]
    law = result.law
    convention_note = "" if result.convention == law.flops else f" (law fitted under {law.flops})"
    kind = rows[0]["params_kind"].replace("_", "-") if rows else law.params_kind
    title = (
        f"{law.name}: {law.title}\nFLOP convention: {result.convention}{convention_note}; N counts {kind} parameters"
    )
    notes = [note + " (pass --brief to silence this)" for note in result.notes]
    printed = fmt is OutputFormat.table and any(k in r for r in rows[:1] for k in _BLOCK_KEYS)
    if printed and len(rows) > MAX_PRINTED_BLOCKS:
        notes.append(
            f"recipe blocks are printed for the first {MAX_PRINTED_BLOCKS} of {len(rows)} budgets; "
            "--format json or csv has every budget's blocks"
        )
    emit(rows, columns, fmt, title=title, caption=f"Source: {law.source}", notes=notes, quiet=True)
    if printed:
        for row in rows[:MAX_PRINTED_BLOCKS]:
            _print_blocks(row, len(rows) > 1)
    if not quiet:
        from scalecalc.cli.common import print_warnings

        print_warnings([*notes, *tagged_warnings(rows, law.name)])


_BLOCK_KEYS = ("shape", "hyperparameters", "hardware", "inference", "data_constrained")


def tagged_warnings(rows: list[dict], law_name: str) -> list[str]:
    """Each distinct warning once, tagged with what it belongs to: the law when every budget
    shares it, else the budgets (FLOPs) whose rows carry it."""
    budgets: dict[str, list[float]] = {}
    for row in rows:
        for w in row["warnings"]:
            budgets.setdefault(w, []).append(row["compute"])
    out = []
    for text, cs in budgets.items():
        if len(cs) == len(rows):
            tag = f"law {law_name}" if len(rows) > 1 else f"{format_sci(cs[0])} FLOPs"
        elif len(cs) <= 3:
            tag = ", ".join(format_sci(c) for c in cs) + " FLOPs"
        else:
            tag = f"{len(cs)} budgets {format_sci(min(cs))} to {format_sci(max(cs))} FLOPs"
        out.append(f"[{tag}] {text}")
    return out


def _print_blocks(row: dict, label: bool) -> None:
    """Each block of a plan row as one or two readable lines under the table."""
    lines = []
    if "shape" in row:
        s = row["shape"]
        kv = f" ({s['kv_heads']} KV heads)" if s["kv_heads"] and s["kv_heads"] != s["n_heads"] else ""
        lines.append(
            f"Shape ({s['rule']} rule): {s['n_layer']} layers x d_model {s['d_model']}, {s['n_heads']} heads of "
            f"{s['head_dim']}{kv}, "
            f"{s['mlp']} FFN {s['d_ff']}, vocab {s['vocab']}, seq {s['seq_len']}; {format_count(s['params'])} "
            f"{s['params_kind'].replace('_', '-')} params "
            f"({s['params_deviation']:+.1%} vs N*), {format_sci(s['flops_per_token'])} FLOPs/token (law: "
            f"{format_sci(s['flops_per_token_law'])})"
        )
    if "hyperparameters" in row:
        h = row["hyperparameters"]
        lr = f"peak LR {h['peak_lr']:.3g}, " if h.get("peak_lr") else "peak LR undefined, "
        warm = f"warmup {format_count(h['warmup_tokens'])} tokens, " if h.get("warmup_tokens") else ""
        beta2 = f"AdamW beta2 {h['beta2']:g}, " if h.get("beta2") else ""
        steps = f"{h['steps']:,.0f} steps" if h.get("steps") else ""
        lines.append(
            f"Hyperparameters ({h['rule']}): batch {format_count(h['batch_tokens'])} tokens "
            f"({h['batch_sequences']:,.0f} x {h['seq_len']}), {lr}{warm}{beta2}{steps}"
        )
        if h.get("critical_batch_tokens"):
            lines.append(
                f"  Critical batch B_crit(L) = {format_count(h['critical_batch_tokens'])} tokens (Kaplan eq. "
                f"1.4): this batch takes "
                f"{h['steps_ratio']:.2f}x the minimum steps and {h['compute_ratio']:.2f}x the minimum compute "
                f"(eq. 5.4/5.5)"
            )
    if "hardware" in row:
        w = row["hardware"]
        if w["usd_per_gpu_hour"] is None:
            cost = "cost unknown (no catalog price; give --usd-per-gpu-hour)"
        else:
            price = f"${w['usd_per_gpu_hour']:.2f}/GPU-hour" + (", assumed" if w["price_assumed"] else "")
            cost = f"${w['train_usd']:,.0f} ({price})"
        lines.append(
            f"Hardware: {w['gpus']} x {w['gpu_title']} ({w['dtype']}, {w['mfu']:.0%} MFU): "
            f"{w['train_gpu_hours']:,.0f} GPU-hours, "
            f"{w['train_wall_clock_days']:,.1f} days, {cost}"
        )
        if w.get("inference_flops"):
            usd = "cost unknown" if w.get("inference_usd") is None else f"${w['inference_usd']:,.0f}"
            lines.append(
                f"  Inference: {format_sci(w['inference_flops'])} FLOPs, {w['inference_gpu_hours']:,.0f} "
                f"GPU-hours, {usd}"
            )
    if "inference" in row:
        i = row["inference"]
        a = i["inference_aware"]
        lines.append(
            f"Inference-aware optimum (Sardana et al. 2024, {format_count(i['inference_tokens'])} inference "
            f"tokens, same loss): "
            f"N {format_count(a['params'])} ({i['params_ratio']:.2f}x), D {format_count(a['train_tokens'])} "
            f"({i['tokens_ratio']:.2f}x), "
            f"D/N {a['tokens_per_param']:.0f}; total cost {i['cost_saving']:.1%} lower"
        )
    if "data_constrained" in row:
        d = row["data_constrained"]
        lines.append(
            f"Data ({format_count(d['unique_tokens'])} unique tokens): this plan repeats them {d['epochs']:.1f}x "
            f"(effective {format_count(d['effective_tokens'])}); "
            f"Muennighoff's optimum: N {format_count(d['optimal_params'])}, D {format_count(d['optimal_tokens'])} "
            f"({d['optimal_epochs']:.1f} epochs)"
        )
    if lines:
        from scalecalc.cli.common import wrap_line

        if label:
            lines.insert(0, f"At {format_sci(row['compute'])} FLOPs:")
        sys.stdout.write("\n".join(wrap_line(line) for line in lines) + "\n")


COMPARE_COLUMNS = [
    Column("Law", "law", str, "left", wrap=False),
    Column("FLOPs conv.", "flops_convention", str, "left"),
    Column("N*", "params", _fmt_count, wrap=False),
    Column("D* (tokens)", "tokens", _fmt_count, wrap=False),
    Column("D/N", "tokens_per_param", _fmt_ratio, wrap=False),
    Column("Loss", "loss", _fmt_loss, wrap=False),
]


@app.command("compare")
def compare_command(
    compute: Annotated[
        list[str], typer.Option("--compute", "-c", help="Compute budget(s) in FLOPs (repeat, a range a:b:n, or -).")
    ],
    laws: Annotated[
        Optional[str],
        typer.Option(
            "--laws",
            help="Comma-separated law names or files (default: every built-in law).",
            autocompletion=complete.laws,
        ),
    ] = None,
    path: Annotated[
        Optional[str], typer.Option("--path", help="Show a correction path instead: 'porian' (Porian et al. 2024).")
    ] = None,
    unique_tokens: UniqueOption = None,
    plot: Annotated[
        Optional[str],
        typer.Option(
            "--plot", help="Write a PNG of N*(C) and D*(C) of each law around the budgets (needs scalecalc[plot])."
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Plan the same budget under every law, side by side, with the spread between them.

    Example:

        scalecalc compare --compute 1e24
        scalecalc compare --compute 1e24 --laws kaplan2020,besiroglu2024,porian2024
        scalecalc compare --compute 5.88e23 --path porian
    """
    import numpy as np

    from scalecalc.compare import compare, correction_path
    from scalecalc.quantities import parse_number, parse_values
    from scalecalc.validate import options, paths

    paths.check_outputs({"--plot": (plot, (".png", ".pdf", ".svg"))})
    budgets = parse_values(compute, "--compute")
    fmt = resolve_format(fmt, as_json)
    if path is not None:
        result = correction_path(path, budgets)
        _render_path(result, fmt, quiet)
        return
    names = options.laws_list(laws)
    u = parse_number(unique_tokens, "--unique-tokens") if unique_tokens else None
    result = compare(budgets, names, unique_tokens=u)
    if plot:
        from scalecalc.plot import plot_frontiers

        span = np.geomspace(budgets.min() / 1e4, budgets.max() * 1e2, 25)
        plot_frontiers(compare(span, names, unique_tokens=u).rows, budgets.tolist(), plot)
    _render_compare(result, fmt, quiet)


def _render_compare(result, fmt: OutputFormat, quiet: bool = False) -> None:
    from scalecalc.cli.common import dumps_csv, dumps_json, print_table, print_warnings

    if fmt is not OutputFormat.table:
        doc = result.to_dict()
        sys.stdout.write(dumps_json(doc) + "\n" if fmt is OutputFormat.json else dumps_csv(result.rows))
        if not quiet:
            print_warnings(result.skipped)
        return
    for budget, spread in zip(result.budgets, result.spreads):
        rows = [r for r in result.rows if r["compute"] == budget]
        caption = (
            f"Spread (max/min across laws): N* {spread['params_ratio']:.2f}x "
            f"({spread['params_min_law']} to {spread['params_max_law']}), "
            f"D* {spread['tokens_ratio']:.2f}x, D/N {spread['tokens_per_param_ratio']:.2f}x"
        )
        print_table(rows, COMPARE_COLUMNS, title=f"Compute budget {format_sci(budget)} FLOPs", caption=caption)
    if result.skipped and not quiet:
        print_warnings(result.skipped)


def _render_path(result, fmt: OutputFormat, quiet: bool = False) -> None:
    columns = [
        Column("Step", "step", str, "left"),
        Column("a", "a", lambda v: f"{v:.3f}"),
        Column("95% CI", "ci", lambda v: f"{v[0]:.3f}–{v[1]:.3f}"),
        Column("N* at budget", "params", _fmt_count, wrap=False),
        Column("Compute (FLOPs)", "compute", format_sci, wrap=False),
    ]
    emit(result["rows"], columns, fmt, title=result["title"], caption=result["source"], quiet=quiet)


def _short_source(text: str) -> str:
    """The authors and year of a source ("Besiroglu, Erdil, Barnett, You 2024"); `laws NAME`
    prints it whole."""
    import re

    match = re.match(r"(.*?)\s*\b((?:19|20)\d\d)\b", text)
    if not match:
        return text
    authors, year = match.groups()
    first = authors.split(",")[0].replace(" et al.", "").strip()
    return f"{first} {year}" if first == authors.strip() else f"{first} et al. {year}"


def _fmt_range(v) -> str:
    return f"{format_sci(v[0], 1)}–{format_sci(v[1], 1)}" if v and None not in v and v[0] == v[0] else "-"


LAWS_COLUMNS = [
    Column("Law", "name", str, "left", wrap=False),
    Column("Form", "form", lambda v: v.split(":")[0], "left", wrap=False),
    Column("a", "exponent_a", lambda v: f"{v:.3f}" if v == v else "-", wrap=False),
    Column("D/N", "tokens_per_param_1e24", lambda v: _fmt_ratio(v) if v == v else "-", wrap=False),
    Column("FLOPs", "flops_convention", str, "left", wrap=False),
    Column("Fitted compute", "fitted_compute", _fmt_range, "left", wrap=False),
    Column("Source", "source", _short_source, "left"),
]


@app.command("laws")
def laws_command(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="Law names or law YAML files to show in full (default: list every built-in law).",
            autocompletion=complete.laws,
            show_default=False,
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """List the built-in laws: form, compute-optimal exponent a, D/N at 1e24 FLOPs, source, range.

    Example:

        scalecalc laws
        scalecalc laws besiroglu2024
        scalecalc laws --json | jq '.rows[].name'
    """
    from scalecalc.compare import law_details, law_summaries

    fmt = resolve_format(fmt, as_json)
    if names:
        rows = [law_details(name) for name in names]
        if fmt is OutputFormat.table:
            _print_law_details(rows)
        else:
            emit(rows, LAWS_COLUMNS, fmt)
        return
    emit(
        law_summaries(),
        _laws_columns(),
        fmt,
        title="Built-in scaling laws (default: besiroglu2024)",
        caption="D/N at 1e24 FLOPs. `scalecalc laws NAME` shows a law's form, constants, ranges and source in full.",
    )


def _laws_columns() -> list[Column]:
    """The laws table at the terminal's width: the form and source only where they fit."""
    from scalecalc.cli.common import output_width

    width = output_width()
    drop = set() if width >= 120 else {"form"} if width >= 100 else {"form", "source"}
    return [c for c in LAWS_COLUMNS if c.key not in drop]


def _gpu_row(gpu) -> dict:
    return {
        "name": gpu.name,
        "title": gpu.title,
        "aliases": list(gpu.aliases),
        "memory_gb": float(gpu.memory_gb),
        "default_dtype": gpu.default_dtype,
        "peak_flops_per_s": {k: float(v) for k, v in gpu.peak.items()},
        "usd_per_gpu_hour": None if gpu.usd_per_gpu_hour is None else float(gpu.usd_per_gpu_hour),
        "price_source": gpu.price_source,
        "source": gpu.source,
    }


def _tflops(dtype: str):
    return lambda peaks: f"{peaks[dtype] / 1e12:,.0f}" if dtype in peaks else "-"


GPU_COLUMNS = [
    Column("GPU", "name", str, "left", wrap=False),
    Column("GB", "memory_gb", lambda v: f"{v:g}", wrap=False),
    Column("BF16", "peak_flops_per_s", _tflops("bf16"), wrap=False),
    Column("FP16", "peak_flops_per_s", _tflops("fp16"), wrap=False),
    Column("FP8", "peak_flops_per_s", _tflops("fp8"), wrap=False),
    Column("TF32", "peak_flops_per_s", _tflops("tf32"), wrap=False),
    Column("$/GPU-h", "usd_per_gpu_hour", lambda v: f"{v:.2f}", wrap=False),
]


@app.command("gpus")
def gpus_command(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(
            help="GPU names or aliases to show in full (default: the whole catalog).",
            autocompletion=complete.gpus,
            show_default=False,
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """List the GPU catalog: dense peak TFLOP/s per dtype, memory, indicative price and sources.

    Example:

        scalecalc gpus
        scalecalc gpus h100 --json
    """
    from scalecalc.hardware import get_gpu, load_catalog

    fmt = resolve_format(fmt, as_json)
    gpus = [get_gpu(n, "NAME") for n in names] if names else list(load_catalog().values())
    rows = [_gpu_row(g) for g in gpus]
    if fmt is not OutputFormat.table or not names:
        emit(
            rows,
            GPU_COLUMNS,
            fmt,
            title="GPU catalog: memory (GB), dense peak TFLOP/s per dtype, indicative price",
            caption="$/GPU-h '-': no catalog price; give --usd-per-gpu-hour. `scalecalc gpus NAME` shows the sources.",
        )
        return
    from scalecalc.cli.common import wrap_line

    out = []
    for r in rows:
        peaks = ", ".join(f"{k} {v / 1e12:,.1f}" for k, v in r["peak_flops_per_s"].items())
        price = (
            "none (give --usd-per-gpu-hour)"
            if r["usd_per_gpu_hour"] is None
            else f"${r['usd_per_gpu_hour']:.2f}/GPU-hour ({r['price_source']})"
        )
        out += [
            f"{r['name']}: {r['title']}",
            wrap_line(f"  Aliases: {', '.join(r['aliases']) or '-'}"),
            f"  Memory: {r['memory_gb']:g} GB; training dtype {r['default_dtype']}",
            wrap_line(f"  Dense peak TFLOP/s: {peaks}"),
            wrap_line(f"  Price: {price}"),
            wrap_line(f"  Source: {r['source']}"),
            "",
        ]
    sys.stdout.write("\n".join(out).rstrip() + "\n")


def _print_law_details(rows: list[dict]) -> None:
    from scalecalc.cli.common import wrap_line

    out = []
    for row in rows:
        out.append(wrap_line(f"{row['name']}: {row['title']}"))
        for label, key in (
            ("Form", "form"),
            ("FLOP convention", "flops_convention"),
            ("N counts", "params_kind"),
            ("Source", "source"),
        ):
            out.append(wrap_line(f"  {label}: {row[key]}"))
        if row["exponent_a"] == row["exponent_a"]:
            out.append(
                f"  Compute-optimal exponent a = {row['exponent_a']:.4f}; D/N at 1e24 FLOPs = "
                f"{row['tokens_per_param_1e24']:.1f}"
            )
        out.append(wrap_line("  Constants: " + ", ".join(f"{k} = {v:.6g}" for k, v in row["constants"].items())))
        for key, (lo, hi) in row["fitted_range"].items():
            out.append(f"  Fitted {key} range: {lo:.3g} to {hi:.3g}")
        if row["bootstrap_replicates"]:
            out.append(f"  Bootstrap replicates: {row['bootstrap_replicates']} (95% intervals in plan)")
        out += [wrap_line(f"  Note: {w}") for w in row["warnings"]]
        out.append("")
    sys.stdout.write("\n".join(out).rstrip() + "\n")


@app.command("formula")
def formula_command(
    law: Annotated[str, typer.Argument(help="Built-in law name or a law YAML file.", autocompletion=complete.laws)],
    latex: Annotated[bool, typer.Option("--latex", help="Print LaTeX instead of unicode.")] = False,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Show a law symbolically (sympy), its FLOP constraint and the derived optimum N*(C), D*(C).

    Example:

        scalecalc formula besiroglu2024
        scalecalc formula hoffmann2022-a3 --latex
    """
    from scalecalc.formula import describe
    from scalecalc.laws import load_law

    fmt = resolve_format(fmt, as_json)
    if fmt is OutputFormat.csv:  # a formula is text, not rows: refuse rather than print JSON
        raise UsageError("--format csv: formula prints text or JSON; use --format table or --format json")
    info = describe(load_law(law, "LAW"), latex=latex)
    if fmt is OutputFormat.json:
        from scalecalc.cli.common import dumps_json

        sys.stdout.write(dumps_json(info) + "\n")
        return
    _print_formula(info)


def _print_formula(info: dict) -> None:
    out = [f"{info['law']}: {info['title']}", f"Source: {info['source']}", ""]
    for text in info["definitions"].values():
        out += [text, ""]
    for key, text in info["formulas"].items():
        out += [f"{key}:", text["symbolic"], "", "with the law's constants:", text["numeric"], ""]
    out += [f"FLOP constraint: {info['constraint']}", ""]
    opt = info["optimum"]
    if opt:
        out += [
            "Compute-optimal allocation (minimise L subject to the constraint):",
            opt["params"],
            "",
            opt["tokens"],
            "",
        ]
        out += [x for x in (opt.get("a"), opt.get("b")) if x] + [""]
        out += ["with the law's constants:", opt["params_numeric"], "", opt["tokens_numeric"], ""]
        out += [x for x in (opt.get("a_numeric"), opt.get("b_numeric")) if x]
    else:
        out.append(info.get("note", ""))
    sys.stdout.write(
        "\n".join(x for x in out if x is not None).rstrip() + "\n"
    )  # numeric views are None without constants
