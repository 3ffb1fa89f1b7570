"""The docs and code comments stand alone: everything they cite is in the repository.

A user has the repository and nothing else, so a "see reference/gradio.md" or a link to a file
outside the tree sends them nowhere: state the fact where it is used instead.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Names of notes that live beside the project in its authors' workplace, never in the repository.
OUTSIDE_NOTES = re.compile(
    r"reference/[\w.-]+\.(?:md|txt)|\.\./shared\b|\bARCHITECTURE\.md\b|\bSTYLE\.md\b"
)
# Markdown links to local files: [text](path) where path is not a URL or an anchor.
MARKDOWN_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s#]+)")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".txt", ".cfg", ".ini", ".yml", ".yaml", ""}


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    files = [REPO / name for name in names if Path(name).suffix in TEXT_SUFFIXES]
    return [f for f in files if f.is_file() and f != Path(__file__).resolve()]


def test_no_file_cites_notes_outside_the_repository() -> None:
    hits = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE_NOTES.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert hits == [], "cites something a user of the repository does not have:\n" + "\n".join(hits)


def test_markdown_links_to_files_point_inside_the_repository() -> None:
    broken = []
    for path in tracked_text_files():
        if path.suffix != ".md":
            continue
        for target in MARKDOWN_LINK.findall(path.read_text(errors="replace")):
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                broken.append(f"{path.relative_to(REPO)} -> {target}")
    assert broken == [], "links to files that are not in the repository:\n" + "\n".join(broken)
