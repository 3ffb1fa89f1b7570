"""The Compare tab's logic: named variants side by side, then a vote for the best or a ranking.

Plain async methods over plain values; `ui.app` maps them onto Gradio components, and tests call
them without a server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from arena.errors import StorageError, UsageError
from arena.limits import DEFAULT_LIMITS, Limits
from arena.measure import Result
from arena.requests import AUDIO_SUFFIXES, IMAGE_SUFFIXES, build_request
from arena.sampling import RECOMMENDED
from backends.base import Request
from ui.services import ArenaServices
from ui.views import PanelView, md_escape

MAX_PANELS = 4


@dataclass
class CompareState:
    """Per browser session: the last finished comparison, which a vote refers to, and the
    variants that answered in it (a vote is about those)."""

    battle_id: str | None = None
    variants: tuple[str, ...] = ()
    voted: bool = False

    @property
    def votable(self) -> tuple[str, ...]:
        """The variants a vote may name now: those that answered in a stored comparison of two
        or more, not yet voted on; none otherwise."""
        if self.battle_id is None or self.voted or len(self.variants) < 2:
            return ()
        return self.variants


@dataclass(frozen=True)
class FormOptions:
    """The Settings accordion's values. Sampling starts at Gemma 4's recommended values: the
    answers people get from these models, not greedy ones a battle could be matched against."""

    system: str = ""
    temperature: float = RECOMMENDED.temperature
    top_p: float = RECOMMENDED.top_p
    top_k: int = RECOMMENDED.top_k or 0
    max_new_tokens: int = 256
    seed: int | None = None
    thinking: bool = False
    tools: str = ""


@dataclass
class ComparisonOutcome:
    """One update of a comparison or battle. The last one of a run carries `summary`: what an
    API client gets in the endpoint's own result (each variant's answer and error)."""

    views: list[PanelView]
    results: list[Result | None] = field(default_factory=list)
    summary: dict[str, Any] | None = None


def request_from_form(message: dict[str, Any] | str | None, options: FormOptions,
                      limits: Limits = DEFAULT_LIMITS) -> Request:
    """A Request from the multimodal box ({"text", "files"}) and the settings, checked against
    `limits` before anything is read (attachments are told apart by content)."""
    message = as_message(message)
    return build_request(
        message.get("text") or "",
        system=options.system,
        files=[_path(f) for f in message.get("files") or []],
        max_new_tokens=options.max_new_tokens,
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        seed=options.seed,
        thinking=options.thinking,
        tools=options.tools,
        limits=limits,
    )


def as_message(message: dict[str, Any] | str | None) -> dict[str, Any]:
    """The multimodal box's value; a plain string (API callers) is the text alone."""
    if isinstance(message, str):
        return {"text": message, "files": []}
    return message or {}


def _path(item: Any) -> str:
    if isinstance(item, dict):  # gradio's FileData as a dict
        return str(item.get("path") or "")
    return str(item)


def modalities_of(message: dict[str, Any] | str | None) -> set[str]:
    """Which media a not-yet-sent message carries, judged by file type (nothing is read)."""
    found = set()
    for item in as_message(message).get("files") or []:
        suffix = "." + _path(item).rsplit(".", 1)[-1].lower()
        if suffix in IMAGE_SUFFIXES:
            found.add("image")
        elif suffix in AUDIO_SUFFIXES:
            found.add("audio")
    return found


class CompareFlow:
    def __init__(self, services: ArenaServices) -> None:
        self.services = services

    def preview(self, selected: Sequence[str], message: dict[str, Any] | str | None) -> list[PanelView]:
        """The panels before sending: names, and a warning where a variant cannot take the input
        (audio to 26B/31B) or is not loaded, so nobody waits for an answer that will not come."""
        wanted = modalities_of(message)
        views = []
        for name in list(selected)[:MAX_PANELS]:
            variant = self.services.variant(name)
            state = variant.state
            note = ""
            if state.phase == "unavailable":
                note = f"**Unavailable:** {md_escape(state.detail)}"
            elif state.phase == "restarting":
                note = (f"**{md_escape(state.label().capitalize())}** after its worker stopped "
                        f"({md_escape(state.detail)}): it will answer once it is back.")
            elif state.phase == "loading":
                note = f"**Still loading** ({md_escape(state.detail)}): it will answer once ready."
            else:
                missing = wanted - set(variant.backend.capabilities.modalities)  # type: ignore[union-attr]
                if missing:
                    note = (f"**Cannot take {' or '.join(sorted(missing))}**: this variant will be skipped "
                            "for this prompt.")
            views.append(PanelView(title=name, note=note))
        return views

    async def run(
        self, state: CompareState, selected: Sequence[str], message: dict[str, Any] | None, options: FormOptions,
        *, voter: str | None = None,
    ) -> AsyncIterator[ComparisonOutcome]:
        from ui.streaming import stream_panels

        if not 1 <= len(selected) <= MAX_PANELS:
            raise UsageError(f"pick 1 to {MAX_PANELS} variants to compare")
        request = request_from_form(message, options, self.services.limits)
        variants = [self.services.variant(name) for name in selected]
        state.battle_id, state.variants, state.voted = None, tuple(selected), False
        while any(not v.state.settled for v in variants):  # loading, or restarting after its worker stopped
            yield ComparisonOutcome(self.preview(selected, message))  # "still loading (40%: ...)"
            await asyncio.sleep(0.5)
        results: list[Result | None] = []
        views = self.preview(selected, message)
        async for shown, results in stream_panels(variants, request, views, timeout_s=self.services.timeout_s):
            views = shown
            yield ComparisonOutcome(views, results)
        finished = [r for r in results if r is not None]
        if len(finished) == len(variants) >= 2:  # one variant alone is no comparison to vote on
            specs = [(v.name, str(v.spec)) for v in variants]
            state.battle_id = await asyncio.to_thread(
                self.services.store.record_comparison, request, specs, finished,
                mode="named", voter=voter or self.services.voter,
            )
            state.variants = tuple(r.variant for r in finished if r.ok)  # the vote is on those that answered
        yield ComparisonOutcome(views, results, summary=comparison_summary(state, results))

    def vote(
        self, state: CompareState, *, best: str | None = None, ranking: Sequence[Sequence[str]] | None = None,
        voter: str | None = None,
    ) -> str:
        """Record the vote on the last comparison; return what to tell the user."""
        if state.battle_id is None:
            raise UsageError("compare some variants first, then vote on their answers")
        if state.voted:
            raise UsageError("this comparison already has your vote: send a new prompt to vote again")
        if len(state.variants) < 2:
            raise UsageError("fewer than two variants answered in your last comparison: there is nothing to vote on")
        named = [best] if best is not None else [name for tier in ranking or [] for name in tier]
        strangers = [name for name in named if name not in state.variants]
        if strangers:
            raise UsageError(f"{', '.join(map(repr, strangers))} did not answer in your last comparison: "
                             f"vote on {', '.join(state.variants)}")
        try:
            self.services.store.record_vote(state.battle_id, best=best, ranking=ranking,
                                            voter=voter or self.services.voter)
        except StorageError as exc:
            raise UsageError(str(exc)) from exc
        state.voted = True
        if best is not None:
            return f"Vote recorded: **{md_escape(best)}** is best."
        tiers = " > ".join(" = ".join(md_escape(n) for n in tier) for tier in ranking or [])
        return f"Ranking recorded: {tiers}."


def comparison_summary(state: CompareState, results: Sequence[Result | None]) -> dict[str, Any]:
    """What `/compare` returns to an API client once it ends: each variant's answer, thinking,
    tool calls, stats and error (as the CLI's `compare --json` has them), the id the comparison
    was recorded under (None when it was not) and the variants a vote may name."""
    return {
        "battle_id": state.battle_id,
        "vote_on": list(state.votable),
        "results": [r.to_json() for r in results if r is not None],
    }


def ranking_from_ranks(names: Sequence[str], ranks: Sequence[Any]) -> list[list[str]]:
    """Tiers from per-variant rank picks (1 = best; equal numbers tie; every variant needs one)."""
    if len(ranks) < len(names) or any(r in (None, "") for r in ranks[: len(names)]):
        raise UsageError("give every shown variant a rank (1 = best; equal ranks are a tie)")
    tiers: dict[int, list[str]] = {}
    for name, rank in zip(names, ranks, strict=False):
        tiers.setdefault(int(rank), []).append(name)
    return [tiers[r] for r in sorted(tiers)]
