"""``python -m scalecalc.laws``: rewrite builtin.json from the built-in YAML laws."""

import json

from scalecalc.laws import _COMPILED, compile_builtins

# keys keep the YAML's order: `define:` entries are evaluated in sequence
_COMPILED.write_text(json.dumps(compile_builtins(), indent=1) + "\n", encoding="utf-8")
print(f"wrote {_COMPILED}")
