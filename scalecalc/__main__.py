"""``python -m scalecalc``."""

from scalecalc.cli import main

main()
