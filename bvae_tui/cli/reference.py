"""The CLI reference page (docs/cli.md), generated from the Typer app itself.

    python -m bvae_tui.cli.reference > docs/cli.md      (or: make docs)

Every command, its usage line, its help and each option with its type, panel, default and
environment variable come from the click command tree that `bvae --help` renders, so the page
cannot drift from the code: tests/test_docs.py fails when the committed page differs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.text import Text
from typer._click import Context

# The TUI's own entry point is an argparse script with the options of `bvae tui`; the docs test
# checks its flags against `bvae-tui --help`.
_TUI_NOTE = ("`bvae-tui [--runs-dir DIR] [--data-dir DIR]` (the TUI's own entry point) and "
             "`python app.py` take the same options as `bvae tui`.")


def root_command() -> Any:
    """The click command tree behind `bvae` (built from the Typer app, commands registered)."""
    from bvae_tui.cli.main import app

    return typer.main.get_command(app)


def walk(command: Any, ctx: Context, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...],
                                                                              Any, Context]]:
    """Every visible command under ``command``, depth first, in the order --help lists them."""
    yield path, command, ctx
    for name, sub in (getattr(command, "commands", None) or {}).items():
        if not sub.hidden:
            yield from walk(sub, Context(sub, info_name=name, parent=ctx), (*path, name))


def _plain(help_text: str | None) -> str:
    """Help as `--help` shows it (Typer renders it as Rich markup: `\\[plot]` reads `[plot]`)."""
    return Text.from_markup(help_text or "").plain.strip()


_CODE_SPAN = re.compile(r"(`[^`]*`)")


def _escape(text: str) -> str:
    """Prose safe for Markdown: help mentions `BVAE_<NAME>_URL`, `*` and `[-limit, limit]`.
    Code spans the help writes (`bvae train`) stay code spans, unescaped."""
    parts = _CODE_SPAN.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        for char in "\\*_[]<>":
            parts[i] = parts[i].replace(char, "\\" + char)
    return "".join(parts)


def _panel(item: Any) -> str | None:
    panel = getattr(item, "rich_help_panel", None)
    return panel if isinstance(panel, str) else None  # Typer's DefaultPlaceholder: no panel


def _default(param: Any) -> str | None:
    """The default `--help` prints, for the options that show one (the others say it in
    their help, from the config schema)."""
    value = param.default
    if not param.show_default or value is None or value == () or callable(value):
        return None
    if isinstance(value, bool):
        if not param.secondary_opts:
            return None  # a plain flag is off unless given
        return (param.opts if value else param.secondary_opts)[0]
    return str(value)


def _option_line(param: Any, ctx: Context) -> str:
    try:
        kind = param.display_type_rich(ctx=ctx)
    except TypeError:  # an older Typer without the ctx argument
        kind = param.display_type_rich()
    names = " / ".join([*param.opts, *param.secondary_opts])
    head = f"`{names}`" if param.is_flag else f"`{names} {kind or 'VALUE'}`"
    extras = []
    if (default := _default(param)) is not None:
        extras.append(f"default: `{default}`")
    if isinstance(param.envvar, str):
        extras.append(f"env: `{param.envvar}`")
    if param.required:
        extras.append("required")
    text = _escape(_plain(param.help)) or "(no help)"
    if extras:
        text += f" ({'; '.join(extras)})"
    return f"- {head}: {text}"


def _usage(path: tuple[str, ...], command: Any, ctx: Context) -> str:
    return " ".join([*path, *command.collect_usage_pieces(ctx)])


def command_section(path: tuple[str, ...], command: Any, ctx: Context) -> list[str]:
    """One command: a heading, its help, its usage, its arguments and options by panel."""
    out = [f"## `{' '.join(path)}`", ""]
    for paragraph in _plain(command.help).split("\n\n"):
        out += [_escape(" ".join(line.strip() for line in paragraph.splitlines())), ""]
    out += ["```text", _usage(path, command, ctx), "```", ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if arguments:
        out += ["Arguments:", ""]
        for arg in arguments:
            many = " (one or more)" if arg.nargs == -1 else ""
            need = "" if arg.required or arg.nargs == -1 else " (optional)"
            out.append(f"- `{arg.name.upper()}`{many}{need}: "
                       f"{_escape(_plain(getattr(arg, 'help', None))) or 'see above'}")
        out.append("")
    options = [p for p in command.params
               if p.param_type_name == "option" and not getattr(p, "hidden", False)]
    panels: dict[str, list[Any]] = {}
    for option in options:
        panels.setdefault(_panel(option) or "Options", []).append(option)
    for panel, members in panels.items():
        out += [f"**{_escape(panel)}**", ""]
        out += [_option_line(option, ctx) for option in members]
        out.append("")
    subcommands = [(name, sub) for name, sub in (getattr(command, "commands", None) or {}).items()
                   if not sub.hidden]
    if subcommands:
        out += ["Commands:", ""]
        for name, sub in subcommands:
            anchor = "-".join(("bvae", *path[1:], name))
            first = _escape(_plain(sub.help).split("\n\n")[0].replace("\n", " "))
            out.append(f"- [`{' '.join((*path, name))}`](#{anchor}): {first}")
        out.append("")
    return out


def markdown() -> str:
    root = root_command()
    ctx = Context(root, info_name="bvae")
    out = [
        "# CLI reference",
        "",
        "<!-- Generated by `python -m bvae_tui.cli.reference` (`make docs`) from the Typer app;",
        "     tests/test_docs.py fails when this file differs. -->",
        "",
        "Every `bvae` command with each of its options, as `bvae COMMAND --help` prints them. "
        "Options of `bvae train` and `bvae sweep` come from one schema (`engine/config.py`), "
        "the one the TUI's new-run form is built from; a value given on the command line "
        "overrides the preset's. " + _TUI_NOTE,
        "",
    ]
    for path, command, sub_ctx in walk(root, ctx, ("bvae",)):
        out += command_section(path, command, sub_ctx)
    return "\n".join(out).rstrip("\n") + "\n"


def main() -> None:
    sys.stdout.write(markdown())


if __name__ == "__main__":
    main()
