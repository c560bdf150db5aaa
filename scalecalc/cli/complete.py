"""Shell completion of option values (``scalecalc --install-completion``).

Each function takes the word typed so far and returns the candidates; the catalogs are imported
only when the shell asks, so an ordinary command pays nothing for them.
"""

from __future__ import annotations

from pathlib import Path


def _starting(names, incomplete: str) -> list[str]:
    return [n for n in names if n.startswith(incomplete)]


def _files(incomplete: str, suffixes: tuple[str, ...]) -> list[str]:
    base = Path(incomplete).parent if incomplete else Path(".")
    try:
        entries = list(base.iterdir()) if base.is_dir() else []
    except OSError:
        return []
    out = []
    for p in entries:
        text = str(p) if str(base) != "." or incomplete.startswith("./") else p.name
        if text.startswith(incomplete) and (p.is_dir() or p.suffix in suffixes):
            out.append(text + ("/" if p.is_dir() else ""))
    return sorted(out)


def laws(incomplete: str) -> list[str]:
    """Built-in law names, then law YAML files."""
    from scalecalc.laws import builtin_names

    return _starting(builtin_names(), incomplete) + _files(incomplete, (".yaml", ".yml"))


def gpus(incomplete: str) -> list[str]:
    from scalecalc.hardware import load_catalog

    return _starting(sorted(load_catalog()), incomplete.lower())


def shape_rules(incomplete: str) -> list[str]:
    from scalecalc.flops import SHAPE_RULES

    return _starting(SHAPE_RULES, incomplete)


def hparams_rules(incomplete: str) -> list[str]:
    from scalecalc.hparams import RULES

    return _starting([*RULES, "law"], incomplete)


def conventions(incomplete: str) -> list[str]:
    from scalecalc.flops import CONVENTIONS

    return _starting(CONVENTIONS, incomplete)


def recipes(incomplete: str) -> list[str]:
    from scalecalc.calibration.recipe import builtin_recipes

    return _starting(builtin_recipes(), incomplete) + _files(incomplete, (".yaml", ".yml"))
