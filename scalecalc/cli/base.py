"""The typer app, its error translation and the lazy registry of command modules.

Every command parses its options, calls one core function and renders the result. This module
owns the single place where a :class:`~scalecalc.errors.ScalecalcError` (or a usage error from
the option parser) becomes one ``Error: ...`` line on stderr and an exit code.

typer turns every registered command's signature into click objects at each start, so
:func:`main` registers only the module of the command being run (all of them for ``--help``,
completion and library use): that keeps ``scalecalc plan`` near the start-up of numpy itself.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
import typer.core

# typer vendors its own copy of click (typer._click, in every release pyproject admits), so its
# exceptions come from there, not from a separately installed click.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from scalecalc.errors import ExitCode, ScalecalcError, exit_status


def _error(message: str, code: int) -> None:
    message = " ".join(str(message).split())  # always exactly one line
    sys.stderr.write(f"Error: {message}\n")
    sys.stderr.flush()
    sys.exit(int(code))


class _Group(typer.core.TyperGroup):
    """Runs the command tree in non-standalone mode and translates every failure once."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except ScalecalcError as exc:
            _error(str(exc), exit_status(exc))
        except ClickException as exc:
            if isinstance(exc, NoArgsIsHelpError):  # no arguments: the help, on stderr, exit 2
                exc.show()
                sys.exit(exit_status(exc))
            _error(exc.format_message(), exit_status(exc))
        except (KeyboardInterrupt, typer.Abort):
            _error("interrupted", ExitCode.INTERRUPTED)
        except BrokenPipeError:  # `scalecalc plan ... | head`
            sys.stderr.close()
            sys.exit(ExitCode.FAILURE)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="scalecalc",
    cls=_Group,
    help="Plan compute-optimal LLM training under every published scaling law.",
    no_args_is_help=True,
    # the plain click formatter: rich markup would eat "[plot]", "a:b:n" (emoji codes) and "()"
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,  # never dump locals on a bug
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from scalecalc import __version__

        print(f"scalecalc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Plan compute-optimal LLM training: model size, tokens, loss, recipe, time and cost."""


# command name -> module of scalecalc.cli that defines it
COMMAND_MODULES = {
    "plan": "plan",
    "compare": "plan",
    "laws": "plan",
    "formula": "plan",
    "gpus": "plan",
    "flops": "flops",
    "fit": "fit",
    "calibrate": "calibrate",
}


def register(modules=None) -> None:
    """Import command modules (default: all), which attach their commands to ``app``."""
    import importlib

    for name in modules or dict.fromkeys(COMMAND_MODULES.values()):
        importlib.import_module(f"scalecalc.cli.{name}")


def main() -> None:
    """Console-script entry point: register what this invocation needs, then run."""
    from scalecalc.validate.noise import silence_numeric_warnings

    silence_numeric_warnings()
    first = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    register([COMMAND_MODULES[first]] if first in COMMAND_MODULES else None)
    app()
