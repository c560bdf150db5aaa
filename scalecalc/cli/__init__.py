"""The command line: the only package that imports typer and rich (see :mod:`scalecalc.cli.base`).

``from scalecalc.cli import app`` gives the app with every command registered (tests, man pages,
library use); the console script goes through :func:`main`, which registers only what it runs.
"""

from scalecalc.cli.base import main

__all__ = ["app", "main"]


def __getattr__(name: str):
    if name == "app":
        from scalecalc.cli.base import app, register

        register()
        return app
    raise AttributeError(f"module 'scalecalc.cli' has no attribute {name!r}")
