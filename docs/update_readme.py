"""Re-run every ```console example in README.md and write its real output back.

Each block starts with a line `$ scalecalc ...`; the rest of the block is that command's stdout
at 100 columns. `tests/test_docs.py` fails when a block is stale; fix it with:

    python docs/update_readme.py
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```console\n\$ (scalecalc [^\n]*)\n(.*?)```", re.S)
ENV = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}


def run(command: str) -> str:
    """stdout of one example command, as the README shows it."""
    args = shlex.split(command)
    out = subprocess.run([sys.executable, "-m", "scalecalc", *args[1:]], capture_output=True, text=True,
                         env=ENV, check=False, cwd=README.parent)
    return "\n".join(line.rstrip() for line in out.stdout.splitlines()) + "\n"


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def main() -> None:
    text = README.read_text()
    new = BLOCK.sub(lambda m: f"```console\n$ {m.group(1)}\n{run(m.group(1))}```", text)
    README.write_text(new)
    print(f"updated {len(blocks(new))} examples in {README}", file=sys.stderr)


if __name__ == "__main__":
    main()
