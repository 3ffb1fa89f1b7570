"""Reading the votes database back: battles, pairwise outcomes, counts, speed, export rows.

Functions take a sqlite-utils Database and return plain values; `storage.store.Store` decides
which connection and transaction they run in.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from arena.ratings import PairOutcome
from arena.votes import Vote, implied_outcomes

CATEGORIES = ("all", "text", "image", "audio")
PHASES = ("served", "finished", "errored")

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
)


@dataclass(frozen=True)
class StoredBattle:
    """A battle as stored. `phase` is derived: 'served' until every side has a run, then
    'errored' if any run failed, else 'finished'. `errors` pairs each failed variant with its error."""

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
    """Medians over a variant's successful runs (None where no run measured the figure)."""

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


def read_battle(db: Database, battle_id: str) -> StoredBattle | None:
    """The battle with this id, or None if there is none. One query: it is on every vote's path."""
    rows = db.conn.execute(
        "SELECT b.created_at, b.mode, b.voter, b.has_image, b.has_audio, s.variant, s.spec, "
        "r.id IS NOT NULL, r.error, v.id IS NOT NULL, v.outcome, v.best, v.ranking "
        "FROM battles b JOIN sides s ON s.battle_id = b.id "
        "LEFT JOIN runs r ON r.battle_id = s.battle_id AND r.position = s.position "
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
    )


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


def _vote_filter(category: str, voter: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause (over votes v JOIN battles b) selecting votes in a category, by a voter."""
    where = _CATEGORY_SQL[check_category(category)]
    params: list[Any] = []
    if voter is not None:
        where += " AND v.voter = ?"
        params.append(voter)
    return where, params


def _voted_battles(db: Database, category: str, voter: str | None) -> list[dict[str, Any]]:
    where, params = _vote_filter(category, voter)
    return list(
        db.query(
            "SELECT v.id AS vote_id, v.battle_id, v.created_at AS voted_at, v.voter, v.outcome, v.best, "
            "v.ranking, b.created_at, b.mode, b.voter AS served_to, b.prompt, b.request, b.has_image, "
            "b.has_audio, b.source, b.source_ref, b.language "
            f"FROM votes v JOIN battles b ON b.id = v.battle_id WHERE {where} ORDER BY v.created_at, v.id",
            params,
        )
    )


def _voted_sides(db: Database, category: str, voter: str | None, *, with_runs: bool) -> dict[str, list[dict[str, Any]]]:
    """Sides (and their runs) of the voted battles the filter selects, in position order."""
    where, params = _vote_filter(category, voter)
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


def pair_outcomes(db: Database, category: str = "all", voter: str | None = None) -> list[PairOutcome]:
    """Every vote in `category` (by `voter`, if given) as pairwise outcomes, in voting order."""
    votes = _voted_battles(db, category, voter)
    sides = _voted_sides(db, category, voter, with_runs=False)
    pairs: list[PairOutcome] = []
    for vote in votes:
        battle_sides = sides[vote["battle_id"]]
        variants = [side["variant"] for side in battle_sides]
        cast = vote_from_row(variants, vote["outcome"], vote["best"], vote["ranking"])
        pairs.extend(implied_outcomes(voted_variants(vote["mode"], battle_sides), cast, tstamp=vote["voted_at"]))
    return pairs


def export_rows(db: Database, category: str = "all", voter: str | None = None) -> Iterator[dict[str, Any]]:
    """One dict per vote, in voting order: the battle, the vote, and every side with its run."""
    votes = _voted_battles(db, category, voter)
    sides = _voted_sides(db, category, voter, with_runs=True)
    for vote in votes:
        battle_sides = sides[vote["battle_id"]]
        variants = [side["variant"] for side in battle_sides]
        yield {
            **vote,
            "vote": vote_from_row(variants, vote["outcome"], vote["best"], vote["ranking"]),
            "sides": battle_sides,
        }


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
    """Per variant, medians of decode rate, time to first token and peak memory over its
    successful runs, sorted by variant."""
    figures: dict[str, list[tuple[Any, Any, Any]]] = defaultdict(list)
    for variant, rate, ttft, peak in db.execute(
        "SELECT s.variant, r.tokens_per_s, r.ttft_s, r.peak_memory_bytes FROM runs r "
        "JOIN sides s ON s.battle_id = r.battle_id AND s.position = r.position WHERE r.error IS NULL"
    ):
        figures[variant].append((rate, ttft, peak))
    return [
        VariantSpeed(
            variant=variant,
            runs=len(rows),
            median_tokens_per_s=_median(row[0] for row in rows),
            median_ttft_s=_median(row[1] for row in rows),
            median_peak_memory_bytes=_median(row[2] for row in rows),
        )
        for variant, rows in sorted(figures.items())
    ]


def _median(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None
