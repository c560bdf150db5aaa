"""YAML from users (law files, recipes): safe loader only, bounded size, aliases and nodes.

``yaml.safe_load`` builds no objects but still expands aliases: a "billion laughs" document of
a few hundred bytes becomes billions of nodes. :func:`load` counts the parser's events first
(aliases are not expanded there, so counting is cheap) and refuses a document over
:data:`~.limits.MAX_YAML_ALIASES` aliases, or whose nodes, with every alias expanded, number
more than :data:`~.limits.MAX_YAML_NODES`, before constructing anything.
"""

from __future__ import annotations

from scalecalc.errors import UsageError
from scalecalc.validate import limits


def load(text: str, where: str, *, error=UsageError):
    """Parse ``text`` (from ``where``) with the safe loader under the alias and node limits."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same safety
    try:
        aliases = nodes = 0
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > limits.MAX_YAML_ALIASES:
                    raise error(
                        f"{where}: more than {limits.MAX_YAML_ALIASES} YAML aliases (*name) (MAX_YAML_ALIASES); "
                        "write the values out instead of repeating anchors"
                    )
            elif isinstance(event, (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                nodes += 1
                if nodes > limits.MAX_YAML_NODES:
                    raise error(
                        f"{where}: more than {limits.MAX_YAML_NODES:,} YAML nodes (MAX_YAML_NODES); the file is "
                        f"too large"
                    )
        if aliases:
            _check_expanded_size(yaml.compose(text, Loader=loader), where, error)
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error(f"{where}{line}: {problem}; fix the YAML syntax") from None
    except RecursionError:
        raise error(f"{where}: YAML nested too deeply; flatten the document") from None


def _check_expanded_size(root, where: str, error) -> None:
    """Refuse a document whose aliases expand to more than MAX_YAML_NODES nodes (each alias
    counted as the whole subtree it repeats; memoised, so the check itself is linear)."""
    sizes: dict[int, int] = {}

    def size(node) -> int:
        key = id(node)
        if key not in sizes:
            sizes[key] = 1  # a recursive alias counts once
            value = node.value if isinstance(node.value, list) else ()
            children = (c for item in value for c in (item if isinstance(item, tuple) else (item,)))
            sizes[key] = 1 + sum(size(c) for c in children)
        return sizes[key]

    if root is not None and size(root) > limits.MAX_YAML_NODES:
        raise error(
            f"{where}: YAML aliases expand to more than {limits.MAX_YAML_NODES:,} nodes (MAX_YAML_NODES); "
            "write the values out instead of repeating anchors"
        )
