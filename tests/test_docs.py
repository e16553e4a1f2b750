"""The README and docs/ as a reader meets them: the README's Python example runs as written, every `headstart`
command line in them parses, every relative link resolves, and every quoted score is the report's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from headstart.cli import _parser
from tests.conftest import REPO

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
REPORT = REPO / "reports" / "heads.md"


def _blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readme_is_a_first_screen() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail to docs/"
    assert len(_blocks(README, "python")) == 1, "the README has one Python example, which test_docs.py runs"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links or page.name not in ("README.md",), "the README links to docs/"
    for link in links:
        if re.match(r"[a-z]+:", link):  # https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        resolved = (page.parent / target).resolve() if target else page
        assert resolved.exists(), f"{page.relative_to(REPO)} links to {link}, which does not exist"
        if anchor:
            assert anchor in _anchors(resolved), f"{page.relative_to(REPO)} links to {link}: no heading '#{anchor}'"


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for block in _blocks(page, "bash"):
            for line in block.splitlines():
                for part in line.split("#", 1)[0].split(" | "):
                    if part.strip().startswith("headstart "):
                        found.append((page.name, part.strip()))
    return found


@pytest.mark.parametrize(("page", "line"), _command_lines())
def test_every_headstart_command_line_parses(page: str, line: str) -> None:
    try:
        _parser().parse_args(shlex.split(line)[1:])
    except SystemExit as err:
        pytest.fail(f"{page}: `{line}` does not parse (exit {err.code}): the CLI changed, or the docs did")


def _report_rows() -> dict[tuple[str, str, str], dict[str, str]]:
    """The digits section of reports/heads.md: (backbone, layer, head) -> column -> the cell's first number."""
    section = REPORT.read_text().split("## digits\n", 1)[1].split("\n## ", 1)[0]
    return _table_rows(section)


def _number(cell: str) -> str:
    return re.match(r"[0-9.]*", cell).group(0)  # type: ignore[union-attr]


def _table_rows(text: str) -> dict[tuple[str, str, str], dict[str, str]]:
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    header: list[str] = []
    for line in text.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:4] == ["backbone", "layer", "head", "accuracy"]:
            header = cells
        elif not cells:
            header = []
        elif header and not set(cells[0]) <= {"-", ":"}:
            rows[(cells[0], cells[1], cells[2])] = {col: _number(cell) for col, cell in zip(header, cells)}
    return rows


@pytest.mark.parametrize("page", [README, REPO / "docs" / "heads.md"], ids=lambda p: p.name)
def test_quoted_scores_are_the_reports(page: Path) -> None:
    report, quoted = _report_rows(), _table_rows(page.read_text())
    assert quoted, f"{page.name} quotes no rows of the report"
    for key, columns in quoted.items():
        assert key in report, f"{page.name} quotes {key}, which reports/heads.md's digits section lacks"
        for column in ("accuracy", "1-shot", "5-shot"):
            if column in columns:
                assert columns[column] == report[key][column], f"{page.name} {key} {column}"


@pytest.fixture
def photos(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "photos").symlink_to(image_folder)
    monkeypatch.chdir(work)
    return work


def test_the_readme_example_runs_as_written(photos: Path, mobilenet_weights: Path) -> None:
    (example,) = _blocks(README, "python")
    scope: dict = {}
    exec(compile(example, "README.md", "exec"), scope)  # noqa: S102 (our own README)
    emb, head, labels = scope["emb"], scope["head"], scope["labels"]
    assert emb.X.shape[0] == 36 and emb.X.dtype == np.float32 and emb.X.flags["C_CONTIGUOUS"]
    assert head.metrics["accuracy"] > 0.8  # three digit classes: pretrained features separate them
    assert len(labels) == 36 and set(labels) <= {"class_0", "class_1", "class_2"}
    assert (photos / ".headstart" / "cache").is_dir()  # cached like the CLI


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_benchmark_and_test_named_exists(page: Path) -> None:
    for name in set(re.findall(r"\b((?:benchmarks|tests)/[\w/]+\.py)\b", page.read_text())):
        assert (REPO / name).is_file(), f"{page.name} names {name}, which does not exist"
