"""The Battle tab's logic: a blind pair, answers streamed as Model A and Model B, one vote, reveal.

Identities stay on the server: the session state (kept in gr.State, never sent to the browser)
and the store hold them; panels are titled only "Model A" and "Model B" until the vote is
recorded. The store enforces the battle's phase, so a vote sent early, twice, or on an errored
battle is refused whatever the browser does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from arena.battles import Pairing, draw_pair
from arena.errors import StorageError, UsageError
from arena.measure import Result
from ui.compare import ComparisonOutcome, FormOptions, request_from_form
from ui.services import ArenaServices
from ui.views import PanelView, md_escape, stats_markdown

SIDES = ("Model A", "Model B")
OUTCOME_TEXT = {"a": "Model A is better", "b": "Model B is better", "tie": "Tie", "both_bad": "Both are bad"}


@dataclass
class BattleState:
    """Per browser session. `phase`: idle, streaming, finished, errored, voted."""

    battle_id: str | None = None
    pairing: Pairing | None = None
    phase: str = "idle"
    #: Each side's stats, kept back until the vote: speed and memory would give the models away.
    stats: tuple[str, ...] = ()

    @property
    def can_vote(self) -> bool:
        return self.phase == "finished"


class BattleFlow:
    def __init__(self, services: ArenaServices) -> None:
        self.services = services

    async def run(
        self, state: BattleState, message: dict[str, Any] | None, options: FormOptions
    ) -> AsyncIterator[ComparisonOutcome]:
        """Draw a pair (a new one for every prompt), stream both sides, record the answers."""
        from ui.streaming import stream_panels

        request = request_from_form(message, options)
        while self.services.loading:  # the pair is drawn among all loaded variants
            yield ComparisonOutcome([PanelView(title=side, note="Waiting for the variants to load...")
                                     for side in SIDES])
            await asyncio.sleep(0.5)
        candidates = [
            v.name for v in self.services.lineup.available
            if request.modalities <= v.backend.capabilities.modalities  # type: ignore[union-attr]
        ]
        counts = await asyncio.to_thread(self.services.store.battle_counts)
        pairing = draw_pair(candidates, counts, self.services.rng)
        variants = [self.services.variant(pairing.a), self.services.variant(pairing.b)]
        specs = [(v.name, str(v.spec)) for v in variants]
        battle_id = await asyncio.to_thread(
            self.services.store.open_battle, request, specs, mode="blind", voter=self.services.voter
        )
        state.battle_id, state.pairing, state.phase = battle_id, pairing, "streaming"
        results: list[Result | None] = []
        async for views, results in stream_panels(
            variants, request, [PanelView(title=side) for side in SIDES], timeout_s=self.services.timeout_s
        ):
            yield ComparisonOutcome([_anonymous(v) for v in views], results)
        finished = [r for r in results if r is not None]
        state.stats = tuple(stats_markdown(r.stats) for r in finished)
        state.phase = await asyncio.to_thread(self.services.store.finish_battle, battle_id, finished)

    def vote(self, state: BattleState, outcome: str) -> str:
        """Record the one vote of this battle and return the reveal (names, after the vote only)."""
        if state.battle_id is None or state.pairing is None:
            raise UsageError("send a prompt first: the vote is on the two answers")
        try:
            self.services.store.record_vote(state.battle_id, outcome, voter=self.services.voter)
        except StorageError as exc:
            raise UsageError(str(exc)) from exc
        state.phase = "voted"
        return reveal(state, outcome)

    def new_round(self, state: BattleState) -> None:
        state.battle_id, state.pairing, state.phase, state.stats = None, None, "idle", ()


def reveal(state: BattleState, outcome: str) -> str:
    assert state.pairing is not None
    lines = [f"**Your vote:** {OUTCOME_TEXT[outcome]}"]
    for side, name, stats in zip(SIDES, (state.pairing.a, state.pairing.b), state.stats, strict=False):
        lines.append(f"**{side}** was **{md_escape(name)}**: {stats}")
    return "  \n".join(lines)


def _anonymous(view: PanelView) -> PanelView:
    """Before the vote a panel shows the answer only: stats (speed, memory) and error messages
    (\"demo:31b cannot take audio\") would tell which model is which."""
    if view.status == "error":
        return replace(view, stats="", note="**Error:** this model failed to answer, so this battle takes no "
                                             "vote. Start a new round.")
    return replace(view, stats="")

