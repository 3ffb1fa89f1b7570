"""Bringing FastChat clean battles in: into the store (battles, runs, votes) or straight into a
ratings table for `leaderboard --battles`.

Every battle gets an id derived from its content, so importing a file twice (or two files that
share battles) stores each battle once. An import is one transaction: refused, it writes nothing.
A blind battle (`anony` true or missing) is stored as mode 'blind', a named one as 'named'; an
answer that names a model family or maker flags its battle, as one recorded here would.

A battle of several turns (its conversations hold two user messages or more) is stored as a
conversation: one battle per turn, each the `parent_id` of the next, the vote on the last, so
that exporting it again writes the same conversation. A battle of one turn is stored as before.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlite_utils import Database

from arena.errors import UsageError
from storage.fastchat import SHOWN_PROBLEMS, BattleRecord, Exchange, Message
from storage.fastchat_reader import BattleFile, BattleTable, Skipped, check_mode, read_battle_table, read_battles
from storage.records import Flag, find_flags, insert_flags

if TYPE_CHECKING:
    from storage.store import Store


class ImportRefused(UsageError):
    """A battles file with bad records, read strictly: nothing was imported."""


@dataclass(frozen=True)
class ImportReport:
    """What an import did: battles stored, battles already there, records skipped (and why),
    named battles left out (`anony` false, unless the import included them), and how many of the
    stored battles were flagged (an answer names a model family or maker)."""

    path: Path
    imported: int
    already_stored: int
    skipped: tuple[Skipped, ...]
    named_left_out: int = 0
    flagged: int = 0

    def summary(self) -> str:
        """One line for people: counts, then each skipped line or item with its reason."""
        text = f"imported {self.imported} battles from {self.path}"
        if self.already_stored:
            text += f" ({self.already_stored} were already stored and were not repeated)"
        if self.named_left_out:
            text += f"; {named_note(self.named_left_out, 'imports')}"
        if self.flagged:
            text += (
                f"; flagged {self.flagged} whose answers name a model family or maker (ratings leave them "
                "out unless --include-flagged)"
            )
        if self.skipped:
            text += f"; skipped {len(self.skipped)} bad records: " + "; ".join(map(str, self.skipped))
        return text


def named_note(count: int, verb: str) -> str:
    """Says that `count` named battles were left out, and how to keep them (`verb`: what
    --include-named then does with them, e.g. "rates")."""
    battles = "battle" if count == 1 else "battles"
    return (
        f"left out {count} named {battles} (anony false: the voter saw the model names), as FastChat "
        f"does; --include-named {verb} them too"
    )


def read_fastchat(path: Path, *, skip_bad: bool, include_named: bool = False, mode: str = "blind") -> BattleFile:
    """Every battle of `mode` in a FastChat JSON/JSONL file: blind ones by default, named ones
    (`anony` false) left out and counted; `include_named` is mode 'all'. Bad records refuse the
    file (ImportRefused, listing them with their line numbers or array indices) unless `skip_bad`,
    which leaves them out."""
    mode = "all" if include_named else check_mode(mode)
    battle_file = read_battles(path, strict=False)
    if battle_file.skipped and not skip_bad:
        raise ImportRefused(refusal(path, battle_file.skipped, len(battle_file.records)))
    return battle_file.of_mode(mode)


def read_fastchat_table(
    path: Path, *, voter: str | None = None, skip_bad: bool = False, mode: str = "blind"
) -> BattleTable:
    """The ratings table of a FastChat file (only `voter`'s battles, by judge, if given; only
    the battles of `mode`), with the records skipped as bad (only with `skip_bad`; otherwise they
    refuse the file) and the count of battles of the other mode left out."""
    if voter is None:
        table = read_battle_table(path, strict=False, mode=mode)
        if table.skipped and not skip_bad:
            good = len(table.battles) + table.named_left_out + table.blind_left_out
            raise ImportRefused(refusal(path, table.skipped, good))
        return table
    everything = read_fastchat(path, skip_bad=skip_bad, mode="all")
    judged = BattleFile(
        tuple(record for record in everything.records if record.judge == voter), everything.skipped, everything.format
    ).of_mode(mode)
    return BattleTable(
        judged.battles(),
        judged.skipped,
        judged.format,
        fast=False,
        named_left_out=judged.named_left_out,
        blind_left_out=judged.blind_left_out,
    )


def refusal(path: Path, skipped: Sequence[Skipped], good: int) -> str:
    """Why a file was refused, naming the first bad lines, and what to do about it."""
    kind = skipped[0].kind
    shown = "; ".join(str(problem) for problem in skipped[:SHOWN_PROBLEMS])
    more = f"; and {len(skipped) - SHOWN_PROBLEMS} more" if len(skipped) > SHOWN_PROBLEMS else ""
    return (
        f"{path}: {len(skipped)} of {len(skipped) + good} {kind}s are not usable battles ({shown}{more}); "
        f"nothing was taken from it: fix those {kind}s, or pass --skip-bad to skip them"
    )


def import_fastchat(store: Store, path: Path, *, strict: bool = True, include_named: bool = False) -> ImportReport:
    """Read a FastChat file and store its battles (named ones only with `include_named`): see
    `Store.import_fastchat`."""
    battle_file = read_fastchat(Path(path), skip_bad=not strict, include_named=include_named)
    return import_battles(store, Path(path), battle_file)


def import_battles(
    store: Store, path: Path, battle_file: BattleFile, progress: Callable[[int, int], None] | None = None
) -> ImportReport:
    """Store every battle of `battle_file` (read from `path`) as a battle (blind if `anony`, else
    named), its two runs and its vote (`judge` as voter), in one transaction; battles already
    stored are left. `progress(done, total)` is called as batches of new battles are written."""
    now = time.time()
    rows = [(battle_id(record), record) for record in battle_file.records]
    # found before the write lock is taken (a big file's answers take a while to check), for the
    # first record of each id: the one stored
    first = dict(reversed(rows))
    flags = find_flags(
        (turn_id, position, answer, "")
        for identity, record in first.items()
        for turn_id, _, answers in _turns(identity, record)
        for position, answer in enumerate(answers)
    )

    def job(db: Database) -> tuple[int, int, int]:
        known = {row[0] for row in db.execute("SELECT id FROM battles")}
        fresh: dict[str, BattleRecord] = {}
        for identity, record in rows:
            # a battle exported from this arena names its battle id (or "id-n" per implied pair)
            question = record.question_id or ""
            if identity not in known and question not in known and question.rsplit("-", 1)[0] not in known:
                fresh.setdefault(identity, record)
        items = list(fresh.items())
        flagged = 0
        for start in range(0, len(items), _BATCH):
            flagged += _insert(db, dict(items[start : start + _BATCH]), now, flags)
            if progress is not None:
                progress(min(start + _BATCH, len(items)), len(items))
        return len(fresh), len(rows) - len(fresh), flagged

    imported, already, flagged = store.write(job)
    return ImportReport(path, imported, already, battle_file.skipped, battle_file.named_left_out, flagged)


_BATCH = 20_000  # battles written between two progress reports


def battle_id(record: BattleRecord) -> str:
    """A stable id from what identifies a battle: who, what outcome, when, which question. The
    texts count only when there is no time: they may be reshaped by a trip through our export."""
    key: list[object] = [
        record.model_a,
        record.model_b,
        record.outcome,
        record.tstamp,
        record.judge,
        record.question_id,
    ]
    if record.tstamp is None:
        key += [[(m.role, m.content) for m in turns] for turns in (record.conversation_a, record.conversation_b)]
    content = json.dumps(key, ensure_ascii=False)
    return "fastchat-" + hashlib.sha256(content.encode()).hexdigest()[:32]


def _turns(identity: str, record: BattleRecord) -> list[tuple[str, Exchange | None, tuple[str, str]]]:
    """(battle id, its exchange, the two answers) of each battle a record is stored as, oldest
    first: one per turn of a conversation of several turns (the last turn's id is the record's:
    `battle_id`), else the record's own battle (exchange None), as imports always stored it."""
    exchanges = record.exchanges()
    if len(exchanges) < 2:
        return [(identity, None, (_answer(record.conversation_a), _answer(record.conversation_b)))]
    ids = [f"{identity}-turn{number}" for number in range(1, len(exchanges))] + [identity]
    return [(turn_id, turn, (turn.answer_a, turn.answer_b)) for turn_id, turn in zip(ids, exchanges, strict=True)]


def _insert(db: Database, records: dict[str, BattleRecord], now: float, flags: list[Flag]) -> int:
    """Store the battles, their runs, votes and flags (of every battle of the file: those of
    `records` are taken); return how many battles were flagged."""
    battles, sides, runs, votes = [], [], [], []
    record_of: dict[str, str] = {}  # each stored battle's record (the id of its last turn)
    for identity, record in records.items():
        when = now if record.tstamp is None else record.tstamp
        parent: str | None = None
        for number, (turn_id, exchange, answers) in enumerate(_turns(identity, record), 1):
            if exchange is None:  # one turn
                system, prompt = _opening(record.conversation_a)
                request: dict[str, object] = {
                    "prompt": prompt, "system": system, "images": [], "audio": [], "turn": record.turn
                }  # fmt: skip
            else:
                prompt = exchange.prompt
                request = {"prompt": prompt, "system": record.system, "images": [], "audio": []}
            battles.append(
                (
                    turn_id,
                    when,
                    "blind" if record.anony else "named",
                    record.judge,
                    prompt,
                    json.dumps(request, ensure_ascii=False),
                    record.question_id,
                    None if record.language == "unknown" else record.language,
                    parent,
                    number,
                )
            )
            for position, (variant, answer) in enumerate(zip((record.model_a, record.model_b), answers, strict=True)):
                sides.append((turn_id, position, variant))
                runs.append((turn_id, position, when, answer))
            record_of[turn_id] = identity
            parent = turn_id
        votes.append((identity, when, record.judge, record.outcome))
    db.conn.executemany(
        "INSERT INTO battles (id, created_at, mode, voter, sides, prompt, request, has_image, has_audio, "
        "source, source_ref, language, parent_id, turn) VALUES (?, ?, ?, ?, 2, ?, ?, 0, 0, 'fastchat', ?, ?, ?, ?)",
        battles,
    )
    db.conn.executemany("INSERT INTO sides (battle_id, position, variant) VALUES (?, ?, ?)", sides)
    db.conn.executemany(
        "INSERT INTO runs (battle_id, position, recorded_at, text, thinking, tool_calls, memory_kind, "
        "token_source, server) VALUES (?, ?, ?, ?, '', '[]', '', '', '{}')",
        runs,
    )
    db.conn.executemany("INSERT INTO votes (battle_id, created_at, voter, outcome) VALUES (?, ?, ?, ?)", votes)
    flagged = insert_flags(db, [flag for flag in flags if flag[0] in record_of])
    return len({record_of[battle] for battle in flagged})  # a conversation once, however many turns are flagged


def _opening(conversation: Sequence[Message]) -> tuple[str | None, str]:
    """(system prompt, first user message) of a conversation."""
    system = next((m.content for m in conversation if m.role == "system"), None)
    prompt = next((m.content for m in conversation if m.role == "user"), "")
    return system, prompt


def _answer(conversation: Sequence[Message]) -> str:
    """The last assistant message (the answer the vote judged)."""
    return next((m.content for m in reversed(conversation) if m.role == "assistant"), "")
