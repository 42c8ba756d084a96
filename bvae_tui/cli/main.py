"""The `bvae` command: a Typer app over the engine.

Heavy imports (torch, sklearn, pynvml, textual) live inside the commands, so `bvae --help` and
`bvae runs` start fast. Every :class:`UserError` becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from bvae_tui.errors import UserError
from bvae_tui.safe_text import plain


class _Group(TyperGroup):
    """Turns a user's mistake into a one-line error and a non-zero exit, never a traceback."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UserError as exc:
            # The message may quote a user's argument or a run file: one line, no escapes.
            typer.echo(f"error: {plain(exc)}", err=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(code=130) from None


app = typer.Typer(
    cls=_Group,
    name="bvae",
    help="Train and study beta-VAEs: datasets, training runs, traversals, metrics, benchmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    """Attach every command module. Each module defines its commands on ``app`` or a sub-app."""
    from bvae_tui.cli import (  # noqa: F401  (imported for their registrations)
        bench_cmd,
        compare_cmd,
        data_cmd,
        eval_cmd,
        explore_cmd,
        export_cmd,
        gpus_cmd,
        runs_cmd,
        sweep_cmd,
        train_cmd,
        tui_cmd,
    )


_register()


def main() -> None:
    app(prog_name="bvae")


if __name__ == "__main__":  # `python -m bvae_tui.cli.main`
    # Here this file is __main__, while the command modules register on the importable
    # bvae_tui.cli.main: run that module's app, not this copy's empty one.
    import importlib

    sys.exit(importlib.import_module("bvae_tui.cli.main").main())
