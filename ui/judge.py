"""The Judge tab's logic: stored pairs of a prompt set, judged blind, one after the other.

Nothing is generated while a judge waits: the answers were stored by `python app.py generate`
(or imported with a set bundle). The flow serves the next pair of a set to a judge
(`arena.judge_queue`: least judged first, never one they judged, random sides), takes their
verdict (a, b, tie, both_bad) through the store's one vote path (`storage.judgments.record_judgment`:
a blind battle with its vote) and then reveals who was who, with the stats.

Blind as a battle is: what is sent before the verdict names no variant or spec and carries no
speed or memory; answers that failed or name their model are never served. The browser gets an
opaque random token for the pair it shows; which answers it stands for stays here, tied to the
judge it was served to. Plain methods over plain values, safe to call from Gradio's threads;
`ui.judge_layout` builds the components, and tests call this without a server.
"""

from __future__ import annotations

import mimetypes
import random
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.agreement import SetAgreement, agreement_text, disagreements, pair_names, set_agreement
from arena.errors import StorageError, UsageError
from arena.judge_queue import Pair, PairIndex, Served
from arena.set_ratings import ALL, WinRate, set_leaderboard, tags_of, win_rates, with_tag
from storage import Store
from storage.judgments import queue_rows, read_pair, record_judgment, set_votes
from storage.records import VoteRejected
from storage.sets import StoredAnswer, read_media, set_info, set_infos
from ui.views import md_escape, stats_markdown

OUTCOMES = ("a", "b", "tie", "both_bad")
OUTCOME_TEXT = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
#: Pairs shown to one judge and not judged yet that keep their token (older ones expire).
MAX_OPEN_PER_JUDGE = 32
#: Skipped pairs remembered per judge and set, so they do not come straight back.
MAX_SKIPPED = 256


@dataclass
class _SetQueue:
    index: PairIndex
    marks: tuple[int, int] = (0, 0)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Open:
    judge: str
    set_name: str
    served: Served


class JudgeFlow:
    """Serves a store's prompt sets to judges. One per app; shared by every session."""

    def __init__(self, store: Store, *, voter: str = "local", rng: random.Random | None = None) -> None:
        self.store = store
        self.voter = voter
        self._rng = rng or random.SystemRandom()
        self._queues: dict[str, _SetQueue] = {}
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._skipped: dict[tuple[str, str], deque[Pair]] = {}
        self._lock = threading.Lock()

    def sets(self) -> list[str]:
        """The names of the stored sets that have answers, for the set dropdown."""
        return [info.name for info in set_infos(self.store) if info.answers]

    def warm(self) -> None:
        """Build the index of every stored set now (~0.3 s per 100,000 answers), so the first
        judge of each set does not wait for it: call it from a background thread at start."""
        for name in self.sets():
            queue = self._queue(name)
            with queue.lock:
                self._refresh(name, queue)

    def next_pair(self, judge: str | None, set_name: str) -> dict[str, Any]:
        """The next pair of `set_name` for `judge` (default: the flow's voter), blind: the prompt
        and the two answers as A and B, with a token to vote or skip with. When the judge has
        judged every pair, `token` is None and `message` says so."""
        judge = judge or self.voter
        if not set_name:
            raise UsageError("choose a prompt set to judge")
        queue = self._queue(set_name)
        with queue.lock:
            self._refresh(set_name, queue)
            avoid = self._avoid(judge, set_name)
            served = queue.index.next_pair(judge, avoid)
            judged, remaining = queue.index.judged_by(judge), queue.index.remaining(judge)
        if served is None:
            pairs = queue.index.pairs
            message = (f"You have judged every pair of {set_name} ({judged} of {pairs}). Thank you!" if pairs else
                       f"{set_name} has no pair to judge yet: every prompt needs answers from two variants")
            return {"token": None, "set": set_name, "judged": judged, "remaining": 0, "message": message}
        prompt, first, second = read_pair(self.store, served.first, served.second)
        token = self._issue(_Open(judge, set_name, served))
        request = prompt.request
        return {
            "token": token,
            "set": set_name,
            "prompt": prompt.text,
            "system": request.get("system"),
            "category": prompt.category,
            "tags": list(prompt.tags),
            "images": [item["sha256"] for item in request["images"]],
            "audio": [item["sha256"] for item in request["audio"]],
            "a": _blind(first),
            "b": _blind(second),
            "judged": judged,
            "remaining": remaining,
            "message": f"{remaining} pair(s) of {set_name} left for you; {judged} judged.",
        }

    def vote(self, judge: str | None, token: str, outcome: str) -> dict[str, Any]:
        """Record `judge`'s verdict on the pair of `token` and return the reveal: which variant
        each side was, with its stats. Refused (UsageError): an unknown or expired token, a token
        served to someone else, an unknown outcome, a pair already judged by this judge."""
        judge = judge or self.voter
        if outcome not in OUTCOMES:
            raise UsageError(f"unknown verdict {outcome!r}: vote a, b, tie or both_bad")
        opened = self._take(judge, token)
        try:
            judged = record_judgment(self.store, opened.served.first, opened.served.second, outcome, judge)
        except VoteRejected as exc:
            raise UsageError(str(exc)) from exc
        except StorageError:
            self._give_back(token, opened)  # the vote may be tried again
            raise
        _, first, second = read_pair(self.store, opened.served.first, opened.served.second)
        sides = {"a": _named(first), "b": _named(second)}
        lines = [f"**Your verdict:** {OUTCOME_TEXT[outcome]}"]
        lines += [f"**{side.upper()}** was **{md_escape(shown['variant'])}**: {shown['stats']}"
                  for side, shown in sides.items()]
        return {"outcome": outcome, "battle_id": judged.battle_id, **sides, "markdown": "  \n".join(lines),
                "set": opened.set_name}

    def skip(self, judge: str | None, token: str) -> dict[str, Any]:
        """Leave the pair of `token` unjudged (nothing is stored) and return the next pair; the
        skipped pair does not come back to this judge while others are left."""
        judge = judge or self.voter
        opened = self._take(judge, token)
        with self._lock:
            skipped = self._skipped.setdefault((judge, opened.set_name), deque(maxlen=MAX_SKIPPED))
            skipped.append(opened.served.pair)
        return self.next_pair(judge, opened.set_name)

    def media_files(self, view: dict[str, Any], folder: Path) -> tuple[list[str], list[str]]:
        """The prompt's images and audio clips of a blind view as files in `folder` (named by
        hash, written once), for the page to show."""
        found = read_media(self.store, [*view.get("images", []), *view.get("audio", [])])
        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, str] = {}
        for sha, media in found.items():
            path = folder / f"{sha}{mimetypes.guess_extension(media.mime) or ''}"
            if not path.exists():
                path.write_bytes(media.data)
            paths[sha] = str(path)
        return ([paths[s] for s in view.get("images", []) if s in paths],
                [paths[s] for s in view.get("audio", []) if s in paths])

    def standings(self, set_name: str, *, tag: str | None = None, rounds: int = 200) -> dict[str, Any]:
        """Where each variant wins in `set_name`: the ratings (of the prompts tagged `tag`), the
        win-rate table per tag and variant, and the judges' agreement; each also as Markdown."""
        info = set_info(self.store, set_name)
        votes = set_votes(self.store, set_name)
        board = set_leaderboard(votes, tag=tag, rounds=rounds)
        table = win_rates(votes)
        agreed = set_agreement(votes)
        return {
            "set": info.name,
            "tag": tag,
            "tags": tags_of(votes),
            "leaderboard": board,
            "win_rates": table,
            "agreement": agreed,
            "markdown": standings_markdown(set_name, tag, len(with_tag(votes, tag)), board.rows, table, agreed,
                                           pair_names(votes)),
        }

    # -- plumbing --------------------------------------------------------------------------

    def _queue(self, set_name: str) -> _SetQueue:
        with self._lock:
            queue = self._queues.get(set_name)
            if queue is None:
                set_info(self.store, set_name)  # an unknown set is refused with the sets there are
                queue = self._queues[set_name] = _SetQueue(PairIndex(self._rng))
            return queue

    def _refresh(self, set_name: str, queue: _SetQueue) -> None:
        """Add what was stored since the last call (by this process or any other)."""
        rows = queue_rows(self.store, set_name, queue.marks)
        for answer, prompt, variant, judgeable in rows.answers:
            queue.index.add_answer(answer, prompt, variant, judgeable)
        for first, second, judge in rows.judgments:
            queue.index.add_judgment(first, second, judge)
        queue.marks = rows.marks

    def _avoid(self, judge: str, set_name: str) -> set[Pair]:
        """Pairs not to serve `judge` now: skipped ones, and ones open in another tab."""
        with self._lock:
            avoid = set(self._skipped.get((judge, set_name), ()))
            avoid |= {o.served.pair for o in self._open.values() if o.judge == judge and o.set_name == set_name}
        return avoid

    def _issue(self, opened: _Open) -> str:
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._open[token] = opened
            mine = [t for t, o in self._open.items() if o.judge == opened.judge]
            for expired in mine[:-MAX_OPEN_PER_JUDGE]:
                del self._open[expired]
        return token

    def _take(self, judge: str, token: str) -> _Open:
        with self._lock:
            opened = self._open.get(token or "")
            if opened is None:
                raise UsageError("this pair is no longer open (judged, skipped, or shown too long ago): take the "
                                 "next pair")
            if opened.judge != judge:
                raise UsageError("this pair was served to another judge: take a pair of your own")
            del self._open[token]
        return opened

    def _give_back(self, token: str, opened: _Open) -> None:
        with self._lock:
            self._open[token] = opened


def _blind(answer: StoredAnswer) -> dict[str, Any]:
    """What a judge sees of an answer before the verdict: the answer alone."""
    result = answer.result
    return {"text": result.text, "thinking": result.thinking,
            "tool_calls": [call.to_json() for call in result.tool_calls]}


def _named(answer: StoredAnswer) -> dict[str, Any]:
    """What the reveal shows of an answer: its variant, spec, repeat and stats."""
    return {"variant": answer.variant, "spec": answer.spec, "repeat": answer.repeat,
            "stats": stats_markdown(answer.result.stats)}


def win_rate_markdown(rows: list[WinRate]) -> str:
    """The win-rate table, one row per tag and variant, as Markdown."""
    if not rows:
        return "No verdicts yet."
    lines = ["| tag | variant | judged | score | 95% interval | wins | losses | ties | both bad |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        tag = "all prompts" if row.tag == ALL else md_escape(row.tag)
        lines.append(f"| {tag} | {md_escape(row.variant)} | {row.judged} | {row.score:.0%} | "
                     f"{row.low:.0%}..{row.high:.0%} | {row.wins} | {row.losses} | {row.ties} | {row.both_bad} |")
    lines.append("\nscore: share of judged pairs won, a tie or both bad counting half; interval: Wilson 95%.")
    return "\n".join(lines)


def standings_markdown(set_name: str, tag: str | None, verdicts: int, rows: Any, table: list[WinRate],
                       agreed: SetAgreement, names: dict[tuple[int, int], str] | None = None) -> str:
    """The Judge tab's (and the report's) view of a set: ratings, win rates per tag, agreement."""
    scope = md_escape(set_name) + (f", tag {md_escape(tag)}" if tag else "")
    lines = [f"### {scope}: {verdicts} verdicts", ""]
    if rows:
        lines += ["| rank | variant | rating | 95% CI | votes |", "|---:|---|---:|---:|---:|"]
        lines += [f"| {r.rank} | {md_escape(r.variant)}{' *' if r.preliminary else ''} | {r.rating:.0f} | "
                  f"{r.ci_low:.0f}..{r.ci_high:.0f} | {r.votes} |" for r in rows]
    lines += ["", win_rate_markdown(table), "", agreement_text(agreed)]
    if names is not None and agreed.per_pair:
        lines += ["", "Least agreed pairs:", ""]
        lines += [f"- {md_escape(line)}" for line in disagreements(agreed, names)]
    return "\n".join(lines)


def set_report_sections(store: Store, *, rounds: int = 200) -> list[str]:
    """The decision report's part for prompt sets: per set with verdicts, where each variant
    wins (ratings, win rate per tag with intervals) and how far the judges agree, as Markdown."""
    sections = []
    for info in set_infos(store):
        votes = set_votes(store, info.name)
        if not votes:
            continue
        board = set_leaderboard(votes, rounds=rounds)
        sections.append(standings_markdown(info.name, None, len(votes), board.rows, win_rates(votes),
                                           set_agreement(votes), pair_names(votes)))
    return sections
