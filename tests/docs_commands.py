"""Finding the `bvae` / `bvae-tui` command lines that README.md and docs/*.md show, and checking
each against the real command tree (not a test module: tests/test_docs.py uses it).

A command is checked word by word: the subcommands must exist, each `--flag` (or `-f`) must be
an option of the command it is given to, an option that takes a value swallows the next word,
and a bare word given to a group must be one of its subcommands.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"`([^`\n]+)`")
# Shell separators between commands on one line (a `|` inside a word such as `H|B` is no pipe).
SEPARATORS = re.compile(r"\s(?:\|\||\||&&|;)\s|;\s|\$\(|\)")
PROGRAMS = ("bvae", "bvae-tui")


@dataclass(frozen=True)
class Shown:
    """One command line as a page shows it."""

    source: str  # file:line
    words: tuple[str, ...]  # from the program's name on

    def __str__(self) -> str:
        return f"{self.source}: {' '.join(self.words)}"


def _strip_comment(line: str) -> str:
    """A shell comment starts at a `#` after a space (`#` inside a word is kept)."""
    match = re.search(r"(^|\s)#", line)
    return line[: match.start()] if match else line


def _words(text: str) -> list[str]:
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote in prose-like lines: plain splitting is enough
        words = text.split()
    # `[--seed 2]` marks an optional part; the brackets are not part of the words.
    words = [re.sub(r"(\.\.\.|…)$", "", w).strip("[]") for w in words]
    return [w for w in words if w]


def _placeholder(word: str) -> bool:
    """RUN, NAME, OPTIONS, COMMAND: a word the reader fills in (usage lines, prose)."""
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", word))


def commands_in(text: str, source: str, *, inline: bool = True) -> Iterator[Shown]:
    """Every command in fenced code blocks (continuation lines joined) and, with ``inline``,
    in inline code spans."""
    in_block = False
    pending = ""
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_block = not in_block
            pending = ""
            continue
        if in_block:
            if not pending:
                start = number
            stripped = line.rstrip()
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            yield from _commands_on(pending + _strip_comment(stripped), f"{source}:{start}")
            pending = ""
        elif inline:
            for span in INLINE.findall(line):
                yield from _commands_on(span, f"{source}:{number}", only_leading=True)


def _commands_on(line: str, source: str, only_leading: bool = False) -> Iterator[Shown]:
    line = re.sub(r"^\s*\$\s+", "", line)  # a prompt
    for part in SEPARATORS.split(line):
        words = _words(part)
        for i, word in enumerate(words):
            if word.rsplit("/", 1)[-1] in PROGRAMS:
                yield Shown(source, (word.rsplit("/", 1)[-1], *words[i + 1:]))
                break
            if only_leading:  # prose in backticks: only a span that *is* a command counts
                break


def _option_names(command: Any) -> dict[str, Any]:
    names: dict[str, Any] = {"--help": None, "-h": None}
    for param in command.params:
        if param.param_type_name == "option":
            for name in (*param.opts, *param.secondary_opts):
                names[name] = param
    return names


def _is_value(word: str) -> bool:
    """A negative number, never an option."""
    return bool(re.fullmatch(r"-[\d.]+(e-?\d+)?", word))


def check_bvae(words: tuple[str, ...], root: Any) -> list[str]:
    """What is wrong with ``bvae WORDS...``: an unknown subcommand or an option the command
    it is given to does not have."""
    command, path = root, ["bvae"]
    problems: list[str] = []
    options = _option_names(command)
    rest = list(words[1:])
    while rest:
        word = rest.pop(0)
        if word.startswith("-") and not _is_value(word):
            name = word.split("=", 1)[0]
            if name not in options:
                problems.append(f"{' '.join(path)} has no option {name}")
                continue
            param = options[name]
            if param is not None and not param.is_flag and "=" not in word and rest:
                rest.pop(0)  # the option's value
            continue
        subcommands = getattr(command, "commands", None)
        if _placeholder(word):
            if word == "COMMAND":  # `bvae sweep [OPTIONS] COMMAND`: any of them, none to check
                return problems
            continue  # an argument the reader fills in
        if subcommands is not None:
            # Prose names alternatives as `stop/resume` or `csv|tensorboard`: each must exist.
            alternatives = re.split(r"[/|]", word)
            missing = [w for w in alternatives if w not in subcommands]
            if missing:
                problems.append(f"{' '.join(path)} has no command {missing[0]!r}")
                return problems
            word = alternatives[0]
            command = subcommands[word]
            path.append(word)
            options = _option_names(command)
        # Anything else is an argument (RUN, a dataset name, a file).
    return problems


def tui_flags() -> set[str]:
    """The options `bvae-tui --help` lists (its own argparse entry point)."""
    from bvae_tui.tui.app import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(["--help"])
    return set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", out.getvalue()))


def check_tui(words: tuple[str, ...], flags: set[str]) -> list[str]:
    problems = []
    for word in words[1:]:
        if word.startswith("-") and word.split("=", 1)[0] not in flags:
            problems.append(f"bvae-tui has no option {word.split('=', 1)[0]}")
    return problems


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
