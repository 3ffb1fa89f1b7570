"""Reading the votes database back: battles, votes and their pairwise outcomes, counts, speed,
voters, export rows.

Functions take a sqlite-utils Database and return plain values; `storage.store.Store` decides
which connection and transaction they run in.

Which votes ratings read is a slice: a category (what the request carried), a voter, a mode
(`RATING_MODES`: blind battles, named comparisons, or all) and whether flagged battles count
(an answer named a model family or maker: `storage.migrations`, m002).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from arena.measure import QUEUE_WAIT_LIMIT_S
from arena.ratings import PairOutcome
from arena.votes import CastVote, Vote
from backends.base import Media, Request, Tool

CATEGORIES = ("all", "text", "image", "audio")
PHASES = ("served", "finished", "errored")
RATING_MODES = ("blind", "named", "all")
"""Which votes ratings read: on blind battles (the default: the voter did not know the names), on
named comparisons, or all."""

_CATEGORY_SQL = {
    "all": "1",
    "text": "b.has_image = 0 AND b.has_audio = 0",
    "image": "b.has_image = 1",
    "audio": "b.has_audio = 1",
}

STAT_COLUMNS = (
    "ttft_s",
    "tokens_per_s",
    "total_s",
    "input_tokens",
    "output_tokens",
    "peak_memory_bytes",
    "load_s",
    "weights_bytes",
    "memory_kind",
    "token_source",
    "request_peak_bytes",
    "queue_wait_s",
    "stalled",
)


@dataclass(frozen=True)
class StoredBattle:
    """A battle as stored. `phase` is derived: 'served' until every side has a run, then
    'errored' if any run failed, else 'finished'. `errors` pairs each failed variant with its error.
    `identity_words` are the model families and makers its answers name (`arena.identity`): the
    battle is `flagged`, and ratings leave it out unless asked. `parent_id` is the turn before it
    in its conversation (None: a first turn), `turn` its number there."""

    id: str
    created_at: float
    mode: str
    voter: str | None
    variants: tuple[str, ...]
    specs: tuple[str | None, ...]
    has_image: bool
    has_audio: bool
    phase: str
    errors: tuple[tuple[str, str], ...]
    vote: Vote | None
    identity_words: tuple[str, ...] = ()
    parent_id: str | None = None
    turn: int = 1

    @property
    def flagged(self) -> bool:
        """Whether an answer named a model family or maker (its vote stays out of ratings by default)."""
        return bool(self.identity_words)

    @property
    def answered(self) -> tuple[str, ...]:
        """The variants whose answer did not fail, in position order."""
        failed = {variant for variant, _ in self.errors}
        return tuple(v for v in self.variants if v not in failed)

    @property
    def voted_on(self) -> tuple[str, ...]:
        """The variants a vote is about: every side of a finished battle; of a named comparison
        where some failed, the ones that answered (a vote says nothing about a failed answer)."""
        return self.answered if self.mode == "named" else self.variants


@dataclass(frozen=True)
class VariantSpeed:
    """Medians over a variant's successful runs in named comparisons and voted battles (None where
    no run measured the figure). Speed medians leave out runs that waited in line or stalled;
    `median_peak_memory_bytes` is the variant's own memory (weights + request peak, or a
    server's figure), never a worker's process total."""

    variant: str
    runs: int
    median_tokens_per_s: float | None
    median_ttft_s: float | None
    median_peak_memory_bytes: float | None


def check_category(category: str) -> str:
    """Return `category` if it is one of CATEGORIES, else raise ValueError naming them."""
    if category not in _CATEGORY_SQL:
        raise ValueError(f"unknown category {category!r}: expected one of {', '.join(CATEGORIES)}")
    return category


def check_mode(mode: str) -> str:
    """Return `mode` if it is one of RATING_MODES, else raise ValueError naming them."""
    if mode not in RATING_MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {', '.join(RATING_MODES)}")
    return mode


def read_battle(db: Database, battle_id: str) -> StoredBattle | None:
    """The battle with this id, or None if there is none. One query: it is on every vote's path."""
    rows = db.conn.execute(
        "SELECT b.created_at, b.mode, b.voter, b.has_image, b.has_audio, s.variant, s.spec, "
        "r.id IS NOT NULL, r.error, v.id IS NOT NULL, v.outcome, v.best, v.ranking, f.words, b.parent_id, b.turn "
        "FROM battles b JOIN sides s ON s.battle_id = b.id "
        "LEFT JOIN runs r ON r.battle_id = s.battle_id AND r.position = s.position "
        "LEFT JOIN identity_flags f ON f.battle_id = s.battle_id AND f.position = s.position "
        "LEFT JOIN votes v ON v.battle_id = b.id WHERE b.id = ? ORDER BY s.position",
        [battle_id],
    ).fetchall()
    if not rows:
        return None
    first = rows[0]
    variants = tuple(row[5] for row in rows)
    errors = tuple((row[5], row[8]) for row in rows if row[8] is not None)
    complete = all(row[7] for row in rows)
    return StoredBattle(
        id=battle_id,
        created_at=first[0],
        mode=first[1],
        voter=first[2],
        variants=variants,
        specs=tuple(row[6] for row in rows),
        has_image=bool(first[3]),
        has_audio=bool(first[4]),
        phase=("errored" if errors else "finished") if complete else "served",
        errors=errors,
        vote=vote_from_row(variants, *first[10:13]) if first[9] else None,
        identity_words=tuple(dict.fromkeys(word for row in rows if row[13] for word in json.loads(row[13]))),
        parent_id=first[14],
        turn=first[15],
    )


#: The battle named by the parameter and every turn before it, nearest first (`depth` 0: itself).
CHAIN_SQL = (
    "WITH RECURSIVE chain (id, parent_id, depth) AS ("
    "SELECT id, parent_id, 0 FROM battles WHERE id = ? "
    "UNION ALL SELECT b.id, b.parent_id, c.depth + 1 FROM battles b JOIN chain c ON b.id = c.parent_id) "
)


def voted_in_chain(db: Database, battle_id: str) -> str | None:
    """The battle of `battle_id`'s conversation up to it (itself and the turns before it) that
    has a vote, or None: a conversation takes one vote, and none goes on after it."""
    row = db.conn.execute(
        CHAIN_SQL + "SELECT c.id FROM chain c JOIN votes v ON v.battle_id = c.id ORDER BY c.depth LIMIT 1",
        [battle_id],
    ).fetchone()
    return None if row is None else row[0]


def has_later_turn(db: Database, battle_id: str) -> bool:
    """Whether a follow-up turn was stored after this battle (it is not its conversation's last)."""
    return db.conn.execute("SELECT 1 FROM battles WHERE parent_id = ? LIMIT 1", [battle_id]).fetchone() is not None


def voted_variants(mode: str, sides: Sequence[dict[str, Any]]) -> list[str]:
    """The variants a stored vote is about, from a battle's sides (see StoredBattle.voted_on)."""
    return [side["variant"] for side in sides if mode != "named" or side["error"] is None]


def vote_from_row(variants: Sequence[str], outcome: str | None, best: int | None, ranking: str | None) -> Vote:
    """Turn a stored vote (positions) back into a Vote (labels)."""
    if outcome is not None:
        return Vote(outcome=outcome)
    if best is not None:
        return Vote(best=variants[best])
    tiers = json.loads(ranking or "[]")
    return Vote.of(ranking=[[variants[position] for position in tier] for tier in tiers])


_FLAGGED = "EXISTS (SELECT 1 FROM identity_flags f WHERE f.battle_id = b.id)"


def _vote_filter(
    category: str, voter: str | None, mode: str = "all", include_flagged: bool = True
) -> tuple[str, list[Any]]:
    """The WHERE clause (over votes v JOIN battles b) selecting votes in a category, by a voter,
    on battles of a mode (RATING_MODES), flagged battles only if `include_flagged`."""
    where = _CATEGORY_SQL[check_category(category)]
    params: list[Any] = []
    if voter is not None:
        where += " AND v.voter = ?"
        params.append(voter)
    if check_mode(mode) != "all":
        where += " AND b.mode = ?"
        params.append(mode)
    if not include_flagged:
        where += f" AND NOT {_FLAGGED}"
    return where, params


def _voted_battles(db: Database, where: str, params: list[Any]) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT v.id AS vote_id, v.battle_id, v.created_at AS voted_at, v.voter, v.outcome, v.best, "
            "v.ranking, b.created_at, b.mode, b.voter AS served_to, b.prompt, b.request, b.has_image, "
            "b.has_audio, b.source, b.source_ref, b.language, b.parent_id, b.turn "
            f"FROM votes v JOIN battles b ON b.id = v.battle_id WHERE {where} ORDER BY v.created_at, v.id",
            params,
        )
    )


def _voted_sides(db: Database, where: str, params: list[Any], *, with_runs: bool) -> dict[str, list[dict[str, Any]]]:
    """Sides (and their runs) of the voted battles the filter selects, in position order."""
    columns = "s.battle_id, s.position, s.variant, s.spec, r.error"
    join = " LEFT JOIN runs r ON r.battle_id = s.battle_id AND r.position = s.position"
    if with_runs:
        columns += ", r.recorded_at, r.text, r.thinking, r.tool_calls, r.error_kind, r.server, "
        columns += ", ".join(f"r.{name}" for name in STAT_COLUMNS)
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in db.query(
        f"SELECT {columns} FROM votes v JOIN battles b ON b.id = v.battle_id "
        f"JOIN sides s ON s.battle_id = v.battle_id{join} WHERE {where} ORDER BY s.battle_id, s.position",
        params,
    ):
        found[row["battle_id"]].append(row)
    return found


def cast_votes(
    db: Database,
    category: str = "all",
    voter: str | None = None,
    *,
    mode: str = "blind",
    include_flagged: bool = False,
) -> list[CastVote]:
    """Every vote of the slice (see the module docstring), in voting order."""
    where, params = _vote_filter(category, voter, mode, include_flagged)
    votes = _voted_battles(db, where, params)
    sides = _voted_sides(db, where, params, with_runs=False)
    cast = []
    for vote in votes:
        battle_sides = sides[vote["battle_id"]]
        variants = [side["variant"] for side in battle_sides]
        cast.append(
            CastVote(
                id=str(vote["vote_id"]),
                voter=vote["voter"],
                variants=tuple(voted_variants(vote["mode"], battle_sides)),
                vote=vote_from_row(variants, vote["outcome"], vote["best"], vote["ranking"]),
                tstamp=vote["voted_at"],
            )
        )
    return cast


def pair_outcomes(
    db: Database,
    category: str = "all",
    voter: str | None = None,
    *,
    mode: str = "blind",
    include_flagged: bool = False,
) -> list[PairOutcome]:
    """Every vote of the slice as pairwise outcomes, in voting order; the pairs of one vote name it."""
    return [
        pair
        for vote in cast_votes(db, category, voter, mode=mode, include_flagged=include_flagged)
        for pair in vote.outcomes()
    ]


def flagged_votes(db: Database, category: str = "all", voter: str | None = None, *, mode: str = "blind") -> int:
    """How many votes of the slice are on flagged battles (left out of ratings by default)."""
    where, params = _vote_filter(category, voter, mode)
    query = f"SELECT COUNT(*) FROM votes v JOIN battles b ON b.id = v.battle_id WHERE {where} AND {_FLAGGED}"
    return int(db.execute(query, params).fetchone()[0])


def voters(db: Database, mode: str = "blind") -> list[str]:
    """Everyone who voted on a battle of `mode` (RATING_MODES), sorted."""
    where, params = _vote_filter("all", None, mode)
    rows = db.execute(
        f"SELECT DISTINCT v.voter FROM votes v JOIN battles b ON b.id = v.battle_id "
        f"WHERE {where} AND v.voter IS NOT NULL ORDER BY v.voter",
        params,
    )
    return [row[0] for row in rows]


def export_rows(db: Database, category: str = "all", voter: str | None = None) -> Iterator[dict[str, Any]]:
    """One dict per vote, in voting order: the battle, the vote, and every side with its run.
    Every mode, flagged battles included: an export holds every vote, with its battle's mode.
    A vote on a later turn of a conversation covers the turns before it, which `earlier_turns`
    holds (see `earlier_turns`); `conversation` is the first turn's battle id."""
    where, params = _vote_filter(category, voter)
    votes = _voted_battles(db, where, params)
    sides = _voted_sides(db, where, params, with_runs=True)
    for vote in votes:
        battle_sides = sides[vote["battle_id"]]
        variants = [side["variant"] for side in battle_sides]
        earlier = [] if vote["parent_id"] is None else earlier_turns(db, vote["parent_id"])
        yield {
            **vote,
            "vote": vote_from_row(variants, vote["outcome"], vote["best"], vote["ranking"]),
            "sides": battle_sides,
            "conversation": earlier[0]["battle_id"] if earlier else vote["battle_id"],
            "earlier_turns": earlier,
        }


def earlier_turns(db: Database, battle_id: str) -> list[dict[str, Any]]:
    """The turns of a conversation up to `battle_id`, oldest first, as the exports write them:
    battle_id, turn, prompt, request (JSON text) and `answers` (variant -> its answer's text;
    "" for one that failed)."""
    turns: dict[str, dict[str, Any]] = {}
    for turn_id, turn, prompt, request, variant, text in db.conn.execute(
        CHAIN_SQL + "SELECT b.id, b.turn, b.prompt, b.request, s.variant, r.text FROM chain c "
        "JOIN battles b ON b.id = c.id JOIN sides s ON s.battle_id = b.id "
        "LEFT JOIN runs r ON r.battle_id = s.battle_id AND r.position = s.position ORDER BY c.depth DESC, s.position",
        [battle_id],
    ):
        found = turns.setdefault(
            turn_id, {"battle_id": turn_id, "turn": turn, "prompt": prompt, "request": request, "answers": {}}
        )
        found["answers"][variant] = text or ""
    return list(turns.values())


def battle_counts(db: Database, *, voted_only: bool = False) -> dict[frozenset[str], int]:
    """How many battles put each pair of variants side by side (errored battles excluded)."""
    condition = (
        "EXISTS (SELECT 1 FROM votes v WHERE v.battle_id = x.battle_id)"
        if voted_only
        else ("NOT EXISTS (SELECT 1 FROM runs r WHERE r.battle_id = x.battle_id AND r.error IS NOT NULL)")
    )
    counts: dict[frozenset[str], int] = {}
    rows = db.execute(
        "SELECT x.variant, y.variant, COUNT(*) FROM sides x JOIN sides y "
        f"ON y.battle_id = x.battle_id AND y.position > x.position WHERE {condition} "
        "GROUP BY x.variant, y.variant"
    )
    for first, second, n in rows:
        pair = frozenset((first, second))
        counts[pair] = counts.get(pair, 0) + n
    return counts


def speed_by_variant(db: Database) -> list[VariantSpeed]:
    """Per variant, medians of decode rate, time to first token and own memory over its
    successful runs, sorted by variant. Only runs of named comparisons and of voted battles
    count: a blind battle's figures are shown with its reveal, after the vote, and one left
    unvoted must not publish them here (the speed of "Model A" would tell who it was).

    Speed leaves out runs that waited in line more than `QUEUE_WAIT_LIMIT_S` or stalled (their
    timings measured the queue or the machine); memory counts them, as it does not depend on it.
    Memory is `Stats.own_memory_bytes`: weights + request peak; for runs without a request peak
    (remote engines; local runs stored before m003) the peak figure they carry."""
    speeds: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    memories: dict[str, list[Any]] = defaultdict(list)
    for variant, rate, ttft, own_memory, waited in db.execute(
        "SELECT s.variant, r.tokens_per_s, r.ttft_s, "
        "CASE WHEN r.request_peak_bytes IS NOT NULL AND r.weights_bytes IS NOT NULL "
        "THEN r.weights_bytes + r.request_peak_bytes "
        "ELSE r.peak_memory_bytes END, "
        "r.stalled OR IFNULL(r.queue_wait_s > ?, 0) FROM runs r "
        "JOIN sides s ON s.battle_id = r.battle_id AND s.position = r.position "
        "JOIN battles b ON b.id = r.battle_id WHERE r.error IS NULL "
        "AND (b.mode = 'named' OR EXISTS (SELECT 1 FROM votes v WHERE v.battle_id = r.battle_id))",
        [QUEUE_WAIT_LIMIT_S],
    ):
        memories[variant].append(own_memory)
        if not waited:
            speeds[variant].append((rate, ttft))
    return [
        VariantSpeed(
            variant=variant,
            runs=len(memories[variant]),
            median_tokens_per_s=_median(row[0] for row in speeds[variant]),
            median_ttft_s=_median(row[1] for row in speeds[variant]),
            median_peak_memory_bytes=_median(memories[variant]),
        )
        for variant in sorted(memories)
    ]


def variant_specs(db: Database) -> dict[str, str]:
    """Variant label -> the spec it last ran as (by battle time), for every variant with a recorded
    spec, sorted by variant."""
    specs: dict[str, str] = {}
    for variant, spec in db.execute(
        "SELECT s.variant, s.spec FROM sides s JOIN battles b ON b.id = s.battle_id "
        "WHERE s.spec IS NOT NULL ORDER BY b.created_at, b.rowid, s.position"
    ):
        specs[variant] = spec
    return dict(sorted(specs.items()))


def _median(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def stored_request(described: Mapping[str, Any], media: Mapping[str, Media],
                   on_missing: Callable[[Mapping[str, Any]], None] | None = None) -> Request:
    """A Request back from its stored `Request.describe()` and the bytes of the media it names
    (by SHA-256). An attachment whose bytes are not in `media` goes to `on_missing` (which may
    raise), or is left out; a field missing from an older or imported record takes its default."""

    def attached(kind: str) -> tuple[Media, ...]:
        found = []
        for item in described.get(kind) or ():
            stored = media.get(item["sha256"])
            if stored is None:
                if on_missing is not None:
                    on_missing(item)
                continue
            found.append(Media(kind=stored.kind, data=stored.data, mime=item.get("mime") or stored.mime,
                               name=item.get("name") or ""))
        return tuple(found)

    return Request(
        prompt=described.get("prompt") or "",
        system=described.get("system"),
        images=attached("images"),
        audio=attached("audio"),
        max_new_tokens=int(described.get("max_new_tokens") or 256),
        temperature=float(described.get("temperature") or 0.0),
        top_p=float(described.get("top_p") or 1.0),
        top_k=described.get("top_k"),
        seed=described.get("seed"),
        thinking=bool(described.get("thinking")),
        tools=tuple(Tool.from_json(tool) for tool in described.get("tools") or ()),
    )
