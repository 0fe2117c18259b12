"""Nothing in the repository points outside it: no reference to a sibling checkout (../shared) or an absolute path of
the machine it was written on, every relative Markdown link resolves inside the repository, and every docs/*.md that
a file names exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"\.\./shared|(?<![\w.])/work/|/home/\w+/")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
DOCS_PAGE = re.compile(r"\bdocs/[\w.-]+\.md\b")


def tracked_text_files() -> dict[str, str]:
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    files = {}
    for name in names.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" not in data[:8192]:  # text only
            files[name] = data.decode("utf-8", errors="replace")
    return files


FILES = tracked_text_files()


def test_no_file_refers_to_a_path_outside_the_repository():
    this_file = Path(__file__).resolve().relative_to(ROOT).as_posix()  # its own examples below must match
    offenders = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in FILES.items()
        if name != this_file
        for m in OUTSIDE.finditer(text)
    ]
    assert not offenders, offenders


def test_relative_markdown_links_resolve_inside_the_repository():
    broken = []
    for name, text in FILES.items():
        if not name.endswith(".md"):
            continue
        for target in MARKDOWN_LINK.findall(text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            resolved = (ROOT / name).parent.joinpath(target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{name}: {target}")
    assert not broken, broken


def test_named_docs_pages_exist():
    missing = sorted(
        {
            f"{name}: {page}"
            for name, text in FILES.items()
            for page in DOCS_PAGE.findall(text)
            if not (ROOT / page).is_file()
        }
    )
    assert not missing, missing


def test_the_checks_can_fail():
    assert OUTSIDE.search("see ../shared/DESIGN.md") and OUTSIDE.search("cd /work/main && make")
    assert not OUTSIDE.search("docs/DESIGN.md, a/work/b, ./work/")
    assert MARKDOWN_LINK.findall("[design](../DESIGN.md#layers) and [site](https://example.org)") == [
        "../DESIGN.md",
        "https://example.org",
    ]
