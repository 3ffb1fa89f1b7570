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
from arena.measure import Result
from arena.requests import AUDIO_SUFFIXES, IMAGE_SUFFIXES, build_request, split_media
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


@dataclass(frozen=True)
class FormOptions:
    system: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None
    thinking: bool = False
    tools: str = ""


@dataclass
class ComparisonOutcome:
    views: list[PanelView]
    results: list[Result | None] = field(default_factory=list)


def request_from_form(message: dict[str, Any] | str | None, options: FormOptions) -> Request:
    """A Request from the multimodal box ({"text", "files"}) and the settings."""
    message = as_message(message)
    images, audio = split_media([_path(f) for f in message.get("files") or []])
    return build_request(
        message.get("text") or "",
        system=options.system,
        images=images,
        audio=audio,
        max_new_tokens=options.max_new_tokens,
        temperature=options.temperature,
        top_p=options.top_p,
        seed=options.seed,
        thinking=options.thinking,
        tools=options.tools,
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
            status = self.services.status.get(name)
            note = ""
            if variant.error:
                note = f"**Unavailable:** {md_escape(variant.error)}"
            elif not variant.available:
                progress = "" if status is None else f" ({md_escape(status.message)})"
                note = f"**Still loading**{progress}: it will answer once ready."
            else:
                missing = wanted - set(variant.backend.capabilities.modalities)  # type: ignore[union-attr]
                if missing:
                    note = (f"**Cannot take {' or '.join(sorted(missing))}**: this variant will be skipped "
                            "for this prompt.")
            views.append(PanelView(title=name, note=note))
        return views

    async def run(
        self, state: CompareState, selected: Sequence[str], message: dict[str, Any] | None, options: FormOptions
    ) -> AsyncIterator[ComparisonOutcome]:
        from ui.streaming import stream_panels

        if not 1 <= len(selected) <= MAX_PANELS:
            raise UsageError(f"pick 1 to {MAX_PANELS} variants to compare")
        request = request_from_form(message, options)
        variants = [self.services.variant(name) for name in selected]
        state.battle_id, state.variants, state.voted = None, tuple(selected), False
        while any(not self.services.status[name].done for name in selected):
            yield ComparisonOutcome(self.preview(selected, message))  # "still loading (40%: ...)"
            await asyncio.sleep(0.5)
        results: list[Result | None] = []
        async for views, results in stream_panels(
            variants, request, self.preview(selected, message), timeout_s=self.services.timeout_s
        ):
            yield ComparisonOutcome(views, results)
        finished = [r for r in results if r is not None]
        if len(finished) == len(variants) >= 2:  # one variant alone is no comparison to vote on
            specs = [(v.name, str(v.spec)) for v in variants]
            state.battle_id = await asyncio.to_thread(
                self.services.store.record_comparison, request, specs, finished,
                mode="named", voter=self.services.voter,
            )
            state.variants = tuple(r.variant for r in finished if r.ok)  # the vote is on those that answered

    def vote(
        self, state: CompareState, *, best: str | None = None, ranking: Sequence[Sequence[str]] | None = None
    ) -> str:
        """Record the vote on the last comparison; return what to tell the user."""
        if state.battle_id is None:
            raise UsageError("compare some variants first, then vote on their answers")
        if state.voted:
            raise UsageError("this comparison already has your vote: send a new prompt to vote again")
        try:
            self.services.store.record_vote(state.battle_id, best=best, ranking=ranking, voter=self.services.voter)
        except StorageError as exc:
            raise UsageError(str(exc)) from exc
        state.voted = True
        if best is not None:
            return f"Vote recorded: **{md_escape(best)}** is best."
        tiers = " > ".join(" = ".join(md_escape(n) for n in tier) for tier in ranking or [])
        return f"Ranking recorded: {tiers}."


def ranking_from_ranks(names: Sequence[str], ranks: Sequence[Any]) -> list[list[str]]:
    """Tiers from per-variant rank picks (1 = best; equal numbers tie; every variant needs one)."""
    if len(ranks) < len(names) or any(r in (None, "") for r in ranks[: len(names)]):
        raise UsageError("give every shown variant a rank (1 = best; equal ranks are a tie)")
    tiers: dict[int, list[str]] = {}
    for name, rank in zip(names, ranks, strict=False):
        tiers.setdefault(int(rank), []).append(name)
    return [tiers[r] for r in sorted(tiers)]
