"""Prompt sets: a team's own prompts, read from a JSONL or CSV file, answered by every variant.

One prompt a line (JSONL: one object; CSV: one row under a header), with these fields:

- `text` (required): the user message;
- `id` (optional): the prompt's id within the set, default its line number;
- `images`, `audio` (optional): files attached, paths relative to the set file (JSONL: a list;
  CSV: `;`-separated);
- `tags` (optional): labels such as `receipts` or `hard` (JSONL: a list; CSV: `;`-separated);
- `category` (optional): one label; where each variant wins is also shown per category, which
  counts as one more tag;
- `system` (optional): a system prompt for this prompt alone (default: the set's).

Every row is checked as a typed prompt is (`arena.requests.build_request`: length, media type,
size, pixels, clip length, against the limits). A bad row (no text, an unknown field, a missing
or unreadable file, a duplicate id) is reported with its line number. Pure values otherwise: no
SQL here; generation samples each answer as Gemma 4 recommends with a seed of its own.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from arena.errors import UsageError
from arena.limits import DEFAULT_LIMITS, Limits
from arena.requests import build_request, read_text_file
from arena.sampling import RECOMMENDED, SEED_LIMIT, battle_seed
from backends.base import Request

FIELDS = ("id", "text", "images", "audio", "tags", "category", "system")
#: How many bad rows a refusal names before "and N more".
SHOWN_BAD_ROWS = 10


@dataclass(frozen=True)
class GenerationOptions:
    """What every prompt of a set is asked with, besides its own text and files."""

    max_new_tokens: int = 256
    system: str | None = None
    thinking: bool = False


@dataclass(frozen=True)
class SetPrompt:
    """One prompt of a set: its request (sampled as Gemma 4 recommends, no seed yet), and labels."""

    id: str
    line: int
    request: Request
    category: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return self.request.prompt

    @property
    def labels(self) -> tuple[str, ...]:
        """Its tags and its category: the slices where each variant's wins are counted."""
        return labels_of(self.tags, self.category)


@dataclass(frozen=True)
class BadRow:
    """A row of a set file that cannot be used, and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class PromptSetFile:
    """What a set file holds: the usable prompts, in file order, and the bad rows."""

    path: Path
    prompts: tuple[SetPrompt, ...]
    bad: tuple[BadRow, ...]

    def usable(self, *, skip_bad: bool) -> tuple[SetPrompt, ...]:
        """The prompts to store; raises UsageError naming the bad rows unless `skip_bad`."""
        if self.bad and not skip_bad:
            raise UsageError(
                f"{self.path}: {len(self.bad)} of {len(self.bad) + len(self.prompts)} rows cannot be used "
                f"({describe_bad(self.bad)}); nothing was generated: fix those rows, or pass --skip-bad to "
                "leave them out"
            )
        if not self.prompts:
            raise UsageError(f"{self.path} holds no usable prompt: give one JSON object (JSONL) or CSV row a prompt, "
                             "with a `text`")
        return self.prompts


def describe_bad(bad: Sequence[BadRow]) -> str:
    """The first bad rows, one after the other, and how many more there are."""
    shown = "; ".join(map(str, bad[:SHOWN_BAD_ROWS]))
    more = f"; and {len(bad) - SHOWN_BAD_ROWS} more" if len(bad) > SHOWN_BAD_ROWS else ""
    return shown + more


def labels_of(tags: Sequence[str], category: str | None) -> tuple[str, ...]:
    """A prompt's tags, then its category if it is not one of them."""
    return tuple(dict.fromkeys([*tags, *([category] if category else [])]))


def read_prompt_set(
    path: str | Path, options: GenerationOptions = GenerationOptions(), limits: Limits = DEFAULT_LIMITS
) -> PromptSetFile:
    """Read a set file (`.jsonl`/`.ndjson`: JSON lines; `.csv`: a header, then rows). Each row is
    checked and becomes a SetPrompt, or a BadRow with its line number. Raises UsageError when the
    file itself cannot be read (missing, not UTF-8, an unknown kind, a CSV header without `text`)."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".jsonl", ".ndjson", ".csv"):
        raise UsageError(f"{path} is neither .jsonl nor .csv: write the prompts as JSON lines (FILE.jsonl) or CSV "
                         "with a header (FILE.csv)")
    text = read_text_file(path, f"the prompt set {path}", encoding="utf-8-sig")
    rows = _csv_rows(path, text) if kind == ".csv" else _jsonl_rows(text)
    prompts: list[SetPrompt] = []
    bad: list[BadRow] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        if isinstance(row, str):
            bad.append(BadRow(line, row))
            continue
        try:
            prompt = _prompt(row, line, path.parent, options, limits)
        except UsageError as exc:
            bad.append(BadRow(line, str(exc)))
            continue
        if prompt.id in first_line:
            bad.append(BadRow(line, f"duplicate id {prompt.id!r} (first on line {first_line[prompt.id]}): give each "
                                    "prompt its own id"))
            continue
        first_line[prompt.id] = line
        prompts.append(prompt)
    return PromptSetFile(path, tuple(prompts), tuple(bad))


def _jsonl_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """(line number, object or why the line is bad) for every non-blank line."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not JSON ({exc.msg} at column {exc.colno})"
            continue
        yield number, value if isinstance(value, dict) else "not a JSON object: write one {\"text\": ...} a line"


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """(line number where the row starts, its fields with lists split at `;`) for every row."""
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    unknown = [name for name in header if name not in FIELDS]
    if "text" not in header or unknown:
        why = f"unknown columns {', '.join(map(repr, unknown))}" if unknown else "no `text` column"
        raise UsageError(f"{path}: the header has {why}; the columns are {', '.join(FIELDS)} (`text` required)")
    start = reader.line_num + 1
    for cells in reader:
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            yield line, f"{len(cells)} cells under a header of {len(header)}: quote cells that hold commas"
            continue
        row: dict[str, Any] = {}
        for name, cell in zip(header, cells, strict=True):
            if name in ("images", "audio", "tags"):
                row[name] = [part.strip() for part in cell.split(";") if part.strip()]
            elif cell.strip():
                row[name] = cell
        yield line, row


def _prompt(row: Mapping[str, Any], line: int, folder: Path, options: GenerationOptions, limits: Limits) -> SetPrompt:
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise UsageError(f"unknown fields {', '.join(map(repr, unknown))}: the fields are {', '.join(FIELDS)}")
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise UsageError("no `text`: every prompt needs the message to send")
    prompt_id = row.get("id", line)
    if isinstance(prompt_id, bool) or not isinstance(prompt_id, (str, int)) or not str(prompt_id).strip():
        raise UsageError(f"the id {prompt_id!r} is not a string or a whole number")
    category = row.get("category")
    if category is not None and (not isinstance(category, str) or not category.strip()):
        raise UsageError(f"the category {category!r} is not a non-empty string")
    system = row.get("system", options.system)
    if system is not None and not isinstance(system, str):
        raise UsageError(f"the system prompt {system!r} is not a string")
    images, audio, tags = (_strings(row.get(name, []), name) for name in ("images", "audio", "tags"))
    request = build_request(
        text,
        system=system,
        images=[_resolve(folder, name) for name in images],
        audio=[_resolve(folder, name) for name in audio],
        max_new_tokens=options.max_new_tokens,
        thinking=options.thinking,
        limits=limits,
    )
    sampled = RECOMMENDED.apply(request, seed=None)
    return SetPrompt(str(prompt_id).strip(), line, sampled, category.strip() if category else None,
                     tuple(dict.fromkeys(tag.strip() for tag in tags)))


def _strings(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise UsageError(f"`{name}` must be a list of non-empty strings, not {value!r}")
    return value


def _resolve(folder: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else folder / path


def answer_seed(base: int | None, prompt_id: str, repeat: int) -> int:
    """The seed of one answer: secret and fresh without `base`; with it, derived from the base,
    the prompt and the repeat (the same for every variant: a reproducible set). Repeats differ."""
    if base is None:
        return battle_seed()
    digest = hashlib.sha256(json.dumps([base, prompt_id, repeat]).encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_LIMIT


def seeded(request: Request, seed: int) -> Request:
    """The request one answer is generated from: the set's sampling with this answer's seed."""
    return replace(request, seed=seed)
