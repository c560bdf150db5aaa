"""``python -m scalecalc``."""

from scalecalc.cli import main

if __name__ == "__main__":  # a spawned worker process re-imports this module: don't rerun the CLI
    main()
