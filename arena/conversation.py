"""One conversation of several turns with the same variants, as the UI flows and the CLI share it.

Each variant keeps its own history: a follow-up sends every variant the earlier user turns with
*that variant's* answers (their text only; thinking and tool calls left out, as Gemma 4's chat
template leaves earlier thinking out). A variant that fails a turn has no answer to build on, so
it is left out of the turns after it (`continuing`, `left_out`), and whoever shows the
conversation says so.

Plain Python: no Gradio, no storage. The stored battle id of each turn is kept so that the next
turn's record can point at it (`parent_id`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from arena.measure import Result
from backends.base import Request, Turn


@dataclass(frozen=True)
class ConversationTurn:
    """One turn: what the user sent (without history) and each asked variant's Result."""

    request: Request
    results: Mapping[str, Result] = field(default_factory=lambda: MappingProxyType({}))
    battle_id: str | None = None

    def answered(self, variant: str) -> bool:
        result = self.results.get(variant)
        return result is not None and result.ok


class Conversation:
    """The variants of a conversation (in order), its turns so far and the mode it runs in."""

    def __init__(self, variants: Sequence[str], mode: str = "named") -> None:
        if not variants:
            raise ValueError("a conversation needs at least one variant")
        if len(set(variants)) != len(variants):
            raise ValueError(f"each variant may be in a conversation once, not {', '.join(variants)}")
        self.variants: tuple[str, ...] = tuple(variants)
        self.mode = mode
        self._turns: list[ConversationTurn] = []

    @property
    def turns(self) -> tuple[ConversationTurn, ...]:
        return tuple(self._turns)

    @property
    def battle_ids(self) -> tuple[str | None, ...]:
        """The stored battle id of each turn, oldest first (None: not recorded)."""
        return tuple(turn.battle_id for turn in self._turns)

    @property
    def parent_id(self) -> str | None:
        """The last turn's battle id: what the store's `parent_id=` takes for the next turn."""
        return self._turns[-1].battle_id if self._turns else None

    def continuing(self) -> tuple[str, ...]:
        """The variants that answered every turn so far, in order: those a follow-up goes to."""
        return tuple(v for v in self.variants if all(turn.answered(v) for turn in self._turns))

    def left_out(self) -> dict[str, int]:
        """Each variant no longer in the conversation, with the number (from 1) of the first turn
        it did not answer."""
        out: dict[str, int] = {}
        for variant in self.variants:
            missed = next((n for n, turn in enumerate(self._turns, 1) if not turn.answered(variant)), None)
            if missed is not None:
                out[variant] = missed
        return out

    def request_for(self, variant: str, turn: Request) -> Request:
        """`turn` as `variant` is to be sent it: after the earlier turns with its own answers."""
        if variant not in self.variants:
            raise ValueError(f"{variant} is not in this conversation ({', '.join(self.variants)})")
        if variant not in self.continuing():
            raise ValueError(f"{variant} did not answer turn {self.left_out()[variant]} and is out of this "
                             "conversation: send the turn to continuing() only")
        return turn.with_history(
            Turn(prompt=t.request.prompt, answer=t.results[variant].text, images=t.request.images,
                 audio=t.request.audio)
            for t in self._turns
        )

    def requests_for(self, turn: Request) -> list[Request]:
        """`turn` for each continuing variant, in the order of `continuing()` (what the fan-out takes)."""
        return [self.request_for(variant, turn) for variant in self.continuing()]

    def add_turn(self, turn: Request, results: Mapping[str, Result], battle_id: str | None = None) -> None:
        """Record a finished turn: what was sent (its history is dropped; the conversation holds
        it) and the Result of each variant it went to."""
        unknown = [name for name in results if name not in self.variants]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in this conversation ({', '.join(self.variants)})")
        gone = [name for name in results if name not in self.continuing()]
        if gone:
            raise ValueError(f"{', '.join(gone)} left this conversation earlier and cannot answer a new turn")
        self._turns.append(ConversationTurn(turn.with_history(()), MappingProxyType(dict(results)), battle_id))

    def regenerate_last(self) -> Request:
        """Drop the last turn and return what it sent, to be sent again."""
        if not self._turns:
            raise ValueError("the conversation has no turn to regenerate")
        return self._turns.pop().request

    def clear(self) -> None:
        """Start over: no turns; the same variants and mode."""
        self._turns.clear()
