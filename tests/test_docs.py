"""The README and the documentation site: the CLI reference is generated from the Typer app and
current, every command the pages show exists with those flags, every page is in the nav, and the
site builds strictly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bvae_tui.cli.reference import markdown, root_command
from tests.docs_commands import check_bvae, check_tui, commands_in, pages, tui_flags

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_cli_reference_is_generated_from_the_typer_app():
    page = DOCS / "cli.md"
    assert page.read_text() == markdown(), (
        "docs/cli.md is out of date; regenerate it with `make docs`")
    out = subprocess.run([sys.executable, "-m", "bvae_tui.cli.reference"], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    assert out.stdout == markdown()


def test_cli_reference_lists_every_command_and_option():
    text = markdown()
    root = root_command()
    seen = 0
    stack = [(("bvae",), root)]
    while stack:
        path, command = stack.pop()
        assert f"## `{' '.join(path)}`" in text, path
        for param in command.params:
            if param.param_type_name == "option" and not param.hidden:
                assert f"`{' / '.join([*param.opts, *param.secondary_opts])}" in text, (
                    path, param.opts)
                seen += 1
        stack += [((*path, name), sub) for name, sub in getattr(command, "commands", {}).items()]
    assert seen > 100  # train's and sweep's schema options among them
    # Help written as Rich markup reads as --help prints it, and prose is escaped for Markdown.
    assert "pip install 'bvae-tui\\[plot\\]'" in text
    assert "sweep each latent over \\[-limit, limit\\]" in text
    assert "gamma\\_dw" in text and "`--tc-estimator mss|mws`" in text  # metavars stay code


def test_the_checker_finds_a_stale_flag_a_missing_command_and_accepts_real_ones():
    root = root_command()
    page = "\n".join([
        "```bash",
        "bvae train --preset dsprites-H --beta -1 --gpu auto -d   # fine",
        "bvae train --betta 4",
        "bvae sweep show NAME --json && bvae sweep shwo NAME",
        "for s in 1 2; do bvae eval b$s --fast; done",
        "bvae export csv RUN... -o rows.csv \\",
        "    --sweep NAME --no-such-flag",
        "```",
        "Inline: `bvae runs show RUN --emergence`, `bvae compare --bye beta`, and",
        "`bvae sweep stop/resume` (alternatives), `bvae-tui --runs-dir DIR --colour`.",
    ])
    shown = list(commands_in(page, "page.md"))
    problems = {str(s): check_bvae(s.words, root) if s.words[0] == "bvae"
                else check_tui(s.words, tui_flags()) for s in shown}
    assert [p for p in problems.values() if p] == [
        ["bvae train has no option --betta"],
        ["bvae sweep has no command 'shwo'"],
        ["bvae export csv has no option --no-such-flag"],
        ["bvae compare has no option --bye"],
        ["bvae-tui has no option --colour"],
    ]
    assert len(shown) == 10  # the fine ones were found and checked too
    assert any(s.source == "page.md:6" for s in shown)  # a continued line, from its first line


def test_every_command_in_the_readme_and_the_docs_exists_with_its_flags():
    root = root_command()
    flags = tui_flags()
    assert {"--runs-dir", "--data-dir"} <= flags
    problems, count = [], 0
    for page in pages(ROOT):
        for shown in commands_in(page.read_text(), str(page.relative_to(ROOT))):
            count += 1
            found = (check_bvae(shown.words, root) if shown.words[0] == "bvae"
                     else check_tui(shown.words, flags))
            problems += [f"{shown}: {p}" for p in found]
    assert not problems, "\n".join(problems)
    assert count > 150  # the pages' commands were found at all


def _nav_pages() -> list[str]:
    return re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_pages()
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(nav) == on_disk
    assert len(nav) == len(set(nav))


def test_readme_is_short_and_links_into_the_docs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for command in ("make demo", "make test"):
        assert command in text
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert {"docs/cli.md", "docs/getting-started.md", "docs/tui/index.md"} <= set(links)
    for link in links:
        assert (ROOT / link).exists(), link  # every link and image resolves in a clone
    for image in ("docs/img/monitor.svg", "docs/img/compare.svg"):
        assert image in links


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                          "--site-dir", str(tmp_path / "site")], capture_output=True, text=True,
                         cwd=ROOT, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "cli.html").exists()
    assert (tmp_path / "site" / "tui" / "monitor.html").exists()
