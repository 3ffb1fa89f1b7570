"""A prompt set with its answers in one zip file, to move between machines: a GPU machine
generates, a team server or a Space judges.

The bundle (`NAME.zip`, one file to copy or upload):

    manifest.json     {"format": "gemma-arena-prompt-set", "version": 1, "set": {...}, counts, media}
    prompts.jsonl     one stored prompt a line: id, line, text, request (media by SHA-256), category, tags
    answers.jsonl     one answer a line (those that succeeded): prompt, variant, spec, repeat, seed,
                      recorded_at, text, thinking, tool calls, stats
    media/<sha256>    each attachment once, named by its hash (checked again on import)

`import_set` stores it in one transaction: what is stored already is left, so importing twice
stores nothing twice and two machines' answers for other variants merge; a prompt or an answer
stored with other content under the same name refuses the whole bundle (nothing is written).
Judgments are not in a bundle: verdicts travel as votes (`export`), and a restored database
links them back to the set (`storage.judgments.relink_judgments`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

from arena.errors import UsageError
from arena.identity import identity_words
from arena.limits import DEFAULT_LIMITS, Limits
from arena.measure import Result, Stats
from backends.base import Media, ToolCall
from storage.judgments import relink_judgments
from storage.queries import STAT_COLUMNS
from storage.records import insert_media
from storage.sets import (
    SetConflict,
    answer_values,
    canonical,
    check_name,
    check_prompts,
    insert_answer,
    read_answers,
    read_media,
    read_prompts,
    set_info,
)

if TYPE_CHECKING:
    from storage.store import Store

FORMAT = "gemma-arena-prompt-set"
VERSION = 1
MANIFEST, PROMPTS, ANSWERS, MEDIA_DIR = "manifest.json", "prompts.jsonl", "answers.jsonl", "media/"
#: Largest prompts or answers file taken (a bundle is data from elsewhere).
MAX_TEXT_BYTES = 2 * 2**30


class BundleError(UsageError):
    """A file that is not a prompt set bundle this version can read, or a damaged one."""


@dataclass(frozen=True)
class SetImport:
    """What an import did."""

    path: Path
    name: str
    prompts_added: int
    prompts_known: int
    answers_added: int
    answers_known: int
    media_added: int
    judgments_linked: int = 0

    def summary(self) -> str:
        text = (f"imported set {self.name} from {self.path}: {self.prompts_added} prompts and "
                f"{self.answers_added} answers added, {self.media_added} media files")
        if self.prompts_known or self.answers_known:
            text += (f" ({self.prompts_known} prompts and {self.answers_known} answers were stored already and "
                     "were not repeated)")
        if self.judgments_linked:
            text += f"; linked {self.judgments_linked} stored verdicts to it"
        return text


def is_set_bundle(path: str | Path) -> bool:
    """Whether `path` is a zip holding a prompt set bundle's manifest (for `import PATH`)."""
    try:
        with zipfile.ZipFile(path) as bundle:
            manifest = json.loads(bundle.read(MANIFEST))
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def export_set(store: Store, name: str, out: str | Path) -> Path:
    """Write set `name` (prompts, answers that succeeded, media) to the zip `out` (FILE.zip; an
    existing folder: NAME.zip in it). The file appears only when complete. Returns its path."""
    info = set_info(store, name)
    out = Path(out).expanduser()
    if out.is_dir():
        out = out / f"{name}.zip"
    if out.suffix.lower() != ".zip":
        raise UsageError(f"a set bundle is a zip file: name it {out.name}.zip, or give an existing folder to write "
                         f"{name}.zip in")
    prompts = read_prompts(store, name)
    answers = read_answers(store, name)
    hashes = sorted({item["sha256"] for p in prompts for kind in ("images", "audio") for item in p.request[kind]})
    media = read_media(store, hashes)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": time.time(),
        "set": {"name": info.name, "created_at": info.created_at, "source": info.source},
        "prompts": len(prompts),
        "answers": len(answers),
        "variants": list(info.variants),
        "media": [{"sha256": sha, "kind": media[sha].kind, "mime": media[sha].mime} for sha in hashes if sha in media],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(staging, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
            bundle.writestr(PROMPTS, "".join(_line({
                "id": p.id, "line": p.line, "text": p.text, "request": p.request, "category": p.category,
                "tags": list(p.tags)}) for p in prompts))
            bundle.writestr(ANSWERS, "".join(_line({
                "prompt": a.prompt_id, "variant": a.variant, "spec": a.spec, "repeat": a.repeat, "seed": a.seed,
                "recorded_at": a.recorded_at, **a.result.to_json()}) for a in answers))
            for sha in hashes:
                if sha in media:  # media is stored before its prompt: always there
                    bundle.writestr(MEDIA_DIR + sha, media[sha].data, compress_type=zipfile.ZIP_STORED)
        os.replace(staging, out)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return out


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def import_set(store: Store, path: str | Path, *, limits: Limits = DEFAULT_LIMITS) -> SetImport:
    """Store the set bundle at `path` (see the module docstring); refuses a damaged bundle, a
    newer format, and content that differs from what is stored under the same set name."""
    path = Path(path).expanduser()
    manifest, prompts, answers, media = _read(path, limits)
    name = check_name(str(manifest["set"]["name"]))
    contents = [(p["id"], p["text"], canonical(p["request"]), p.get("category"),
                 json.dumps(p.get("tags", []), ensure_ascii=False)) for p in prompts]
    rows = [_answer(name, item) for item in answers]

    def job(db: Database) -> SetImport:
        if not db.execute("SELECT 1 FROM prompt_sets WHERE name = ?", [name]).fetchone():
            db.conn.execute("INSERT INTO prompt_sets (name, created_at, source) VALUES (?, ?, ?)",
                            [name, manifest["set"].get("created_at", time.time()),
                             str(manifest["set"].get("source", path.name))])
        new = check_prompts(db, name, contents)
        insert_media_count = len(insert_media(db, media.values()))
        db.conn.executemany(
            "INSERT INTO set_prompts (set_name, prompt_id, line, text, request, category, tags) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(name, c[0], p.get("line", 0), c[1], c[2], c[3], c[4]) for p, c in zip(prompts, contents, strict=True)
             if c[0] in new],
        )
        stored = {
            (prompt, variant, repeat): text
            for prompt, variant, repeat, text in db.execute(
                "SELECT prompt_id, variant, repeat, text FROM set_answers WHERE set_name = ? AND error IS NULL",
                [name],
            )
        }
        differ = [key for key, row in rows if key in stored and stored[key] != row[7]]
        if differ:
            shown = ", ".join(f"{p!r} by {v} (repeat {r})" for p, v, r in differ[:3])
            raise SetConflict(
                f"{path}: {len(differ)} answer(s) of set {name!r} are stored here with other text ({shown}): this "
                "bundle comes from another generation of the same set. Import it into another database, or "
                "generate under another set name"
            )
        fresh = {key: row for key, row in rows if key not in stored}
        for row in fresh.values():
            insert_answer(db, row)
        linked = relink_judgments(db)
        return SetImport(path, name, len(new), len(contents) - len(new), len(fresh), len(rows) - len(fresh),
                         insert_media_count, linked)

    return store.write(job)


def _read(path: Path, limits: Limits) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]],
                                                dict[str, Media]]:
    """The manifest, prompts, answers and media of a bundle, each checked."""
    try:
        bundle = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise BundleError(f"there is no set bundle at {path}") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path} is not a set bundle (not a readable zip file: {exc})") from exc
    with bundle:
        try:
            manifest = json.loads(_member(bundle, MANIFEST, 2**20))
        except ValueError as exc:
            raise BundleError(f"{path}: its manifest is not JSON ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BundleError(f"{path} is not a prompt set bundle (its manifest says no format {FORMAT!r}): "
                              "make one with `python app.py export --format set --set NAME`")
        if manifest.get("version") != VERSION:
            raise BundleError(f"{path} is a set bundle of version {manifest.get('version')}, which this Gemma Arena "
                              f"does not read (it reads version {VERSION}): upgrade gemma-arena")
        prompts = list(_jsonl(path, PROMPTS, _member(bundle, PROMPTS, MAX_TEXT_BYTES)))
        answers = list(_jsonl(path, ANSWERS, _member(bundle, ANSWERS, MAX_TEXT_BYTES)))
        media = {}
        for item in manifest.get("media", []):
            sha = str(item["sha256"])
            data = _member(bundle, MEDIA_DIR + sha, limits.max_upload_bytes)
            if hashlib.sha256(data).hexdigest() != sha:
                raise BundleError(f"{path}: the media file {sha[:12]}... does not hash to its name: the bundle is "
                                  "damaged; export it again")
            if item.get("kind") not in ("image", "audio"):
                raise BundleError(f"{path}: the media file {sha[:12]}... is of unknown kind {item.get('kind')!r}")
            media[sha] = Media(kind=item["kind"], data=data, mime=str(item.get("mime", "")))
    needed = {i["sha256"] for p in prompts for kind in ("images", "audio") for i in p["request"].get(kind, [])}
    missing = needed - set(media)
    if missing:
        raise BundleError(f"{path}: {len(missing)} media file(s) its prompts name are missing: export it again")
    known = {p["id"] for p in prompts}
    stray = {a["prompt"] for a in answers} - known
    if stray:
        raise BundleError(f"{path}: answers name prompts that are not in it ({', '.join(sorted(stray)[:3])}): "
                          "export it again")
    return manifest, prompts, answers, media


def _member(bundle: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = bundle.getinfo(name)
    except KeyError:
        raise BundleError(f"{bundle.filename}: {name} is missing from the bundle: export it again") from None
    if info.file_size > limit:
        raise BundleError(f"{bundle.filename}: {name} is {info.file_size:,} bytes, more than the {limit:,} taken")
    try:
        return bundle.read(info)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"{bundle.filename}: {name} cannot be read ({exc}): the bundle is damaged") from exc


def _jsonl(path: Path, name: str, data: bytes) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise BundleError(f"{path}: {name} line {number} is not JSON ({exc}): the bundle is damaged") from exc
        if not isinstance(value, dict):
            raise BundleError(f"{path}: {name} line {number} is not a JSON object: the bundle is damaged")
        yield value


def _answer(name: str, item: dict[str, Any]) -> tuple[tuple[str, str, int], tuple[Any, ...]]:
    """(key, set_answers values) of an exported answer; refuses one without its fields."""
    try:
        stats = item["stats"]
        figures: dict[str, Any] = {c: bool(stats[c]) if c == "stalled" else stats[c] for c in STAT_COLUMNS
                                   if c in stats}
        measured = Stats(**figures, server=stats.get("server", {}))
        result = Result(item["variant"], item["text"], item["thinking"],
                        tuple(ToolCall(c["name"], c["arguments"]) for c in item.get("tool_calls", [])), measured)
        key = (str(item["prompt"]), str(item["variant"]), int(item["repeat"]))
        words = identity_words(result.text, result.thinking)
        values = answer_values(name, key[0], key[1], item.get("spec"), key[2], item.get("seed"),
                               float(item["recorded_at"]), result, words)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"an answer of the bundle lacks a field or has a wrong one ({exc}): export it again") from exc
    return key, values
