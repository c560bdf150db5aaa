"""A small JSON Schema checker for the output contract (README "Output formats").

It reads the subset of JSON Schema the shipped schemas use (type, required, properties,
additionalProperties, items) and is stricter than the standard in one place, on purpose: a
"number" must be a float in the parsed document (written ``2.0`` or ``1.46e+24``), because
"floats stay floats" is part of the contract; an "integer" is a count.
"""

from __future__ import annotations

import json
from importlib import resources

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, float),
}


def load_schema(name: str) -> dict:
    return json.loads(resources.files("scalecalc").joinpath(f"schemas/{name}.json").read_text())


def errors(value, schema: dict, where: str = "$") -> list[str]:
    out = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[k](value) for k in kinds):
            return [f"{where}: {value!r:.60} is not {' or '.join(kinds)}"]
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{where}: missing {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, v in value.items():
            if key in props:
                out += errors(v, props[key], f"{where}.{key}")
            elif extra is False:
                out.append(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                out += errors(v, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += errors(v, schema["items"], f"{where}[{i}]")
    return out


def validate(document_text: str, name: str) -> dict:
    doc = json.loads(document_text)
    problems = errors(doc, load_schema(name))
    assert not problems, "\n".join(problems[:20])
    return doc
