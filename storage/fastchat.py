"""FastChat "clean battle" records, the lingua franca of arena analysis: the fields, their
checks, and writing them. Reading files of them is `storage.fastchat_reader`.

A battle is a JSON object with `model_a`, `model_b` and `winner` (`model_a | model_b | tie |
tie (bothbad)`, our outcomes a / b / tie / both_bad), and optionally `tstamp`, `question_id`,
`judge`, `anony`, `turn`, `language`, `conversation_a`, `conversation_b` ([{role, content}]).
Keys may come in any order. Other fields (FastChat's `conv_metadata`, `category_tag`,
`dedup_tag`, ...) are read past and not kept.

A battle of several turns holds the whole conversation on each side: the system prompt if any,
then each user message followed by that side's answer to it, and `turn` counts the user
messages. Both sides answer the same user messages (`BattleRecord.exchanges`).

`anony` says whether the voter saw the answers without the model names (a blind battle).
FastChat rates only those, and so do `leaderboard --battles` and `import` unless given
`--include-named`. A battle without `anony` (or with null) counts as anonymous: FastChat's clean
files always carry the field, so it is missing only from files written by hand or by other
tools, which are not known to have shown the names, and leaving all their battles out would
give an empty leaderboard without a word. Our own writer always writes it: true for blind
votes, false for named ones.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

from arena.errors import UsageError
from arena.ratings import OUTCOMES, PairOutcome

Winner = Literal["model_a", "model_b", "tie", "tie (bothbad)"]
WINNERS: tuple[Winner, ...] = ("model_a", "model_b", "tie", "tie (bothbad)")
WINNER_TO_OUTCOME = dict(zip(WINNERS, OUTCOMES, strict=True))
OUTCOME_TO_WINNER = dict(zip(OUTCOMES, WINNERS, strict=True))
FORMATS = ("jsonl", "json")
SHOWN_PROBLEMS = 5

_WINNER_CHOICES = ", ".join(WINNERS)

#: What ratings use of one battle: model_a, model_b, winner (FastChat's), tstamp, anony (as written).
RatedFields = tuple[str, str, Winner, float | None, bool | None]


@dataclass(frozen=True)
class Message:
    """One turn of a conversation."""

    role: str
    content: str


@dataclass(frozen=True)
class Exchange:
    """One turn of a battle's conversation: the user's message and each side's answer to it."""

    prompt: str
    answer_a: str
    answer_b: str


@dataclass(frozen=True)
class BattleRecord:
    """One FastChat clean battle, with the winner as our outcome (a, b, tie, both_bad). `anony`
    is true for a blind battle (the voter did not see the names): see the module docstring."""

    model_a: str
    model_b: str
    outcome: str
    tstamp: float | None = None
    question_id: str | None = None
    judge: str | None = None
    anony: bool = True
    conversation_a: tuple[Message, ...] = ()
    conversation_b: tuple[Message, ...] = ()
    turn: int = 1
    language: str = "unknown"

    def __post_init__(self) -> None:
        self.pair()  # the same rules as a pair outcome: known outcome, two different variants
        if self.tstamp is not None and not math.isfinite(self.tstamp):
            raise ValueError(f"tstamp must be a finite number of seconds, not {self.tstamp!r}")

    def pair(self) -> PairOutcome:
        """The pairwise outcome this battle records (what ratings use)."""
        return PairOutcome(self.model_a, self.model_b, self.outcome, self.tstamp)

    @property
    def system(self) -> str | None:
        """The first system message of conversation_a (else of conversation_b), if any."""
        messages = (*self.conversation_a, *self.conversation_b)
        return next((m.content for m in messages if m.role == "system"), None)

    def exchanges(self) -> tuple[Exchange, ...]:
        """The turns of the conversations, oldest first: each user message, with the answer of
        each side that follows it (its last assistant message before the next user message; ""
        if none, or if that side's conversation is missing). ValueError when the two sides of a
        battle of several turns hold different user messages: both answer the same ones (a
        battle of one turn takes conversation_a's, as imports always did)."""
        turns_a, turns_b = _turns(self.conversation_a), _turns(self.conversation_b)
        prompts_a, prompts_b = [prompt for prompt, _ in turns_a], [prompt for prompt, _ in turns_b]
        if len(prompts_a) == len(prompts_b) == 1:
            prompts_b = prompts_a
        if turns_a and turns_b and prompts_a != prompts_b:
            differ = [n for n, (a, b) in enumerate(zip(prompts_a, prompts_b, strict=False), 1) if a != b]
            where = f"at turn {differ[0]}" if differ else f"{len(prompts_a)} turns against {len(prompts_b)}"
            raise ValueError(
                f"conversation_a and conversation_b hold different user messages ({where}): both sides of a "
                "battle answer the same messages"
            )
        prompts = prompts_a or prompts_b
        answers_a = [answer for _, answer in turns_a] or [""] * len(prompts)
        answers_b = [answer for _, answer in turns_b] or [""] * len(prompts)
        return tuple(Exchange(*turn) for turn in zip(prompts, answers_a, answers_b, strict=True))

    def to_fastchat(self) -> dict[str, Any]:
        """The FastChat JSON object, model_a, model_b, winner and tstamp first (for people
        reading the file; readers take keys in any order)."""
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "winner": OUTCOME_TO_WINNER[self.outcome],
            "tstamp": self.tstamp,
            "question_id": self.question_id,
            "judge": self.judge,
            "anony": self.anony,
            "turn": self.turn,
            "language": self.language,
            "conversation_a": [{"role": m.role, "content": m.content} for m in self.conversation_a],
            "conversation_b": [{"role": m.role, "content": m.content} for m in self.conversation_b],
        }

    @classmethod
    def from_fastchat(cls, obj: object) -> BattleRecord:
        """Check and convert one parsed FastChat object; ValueError says what is wrong."""
        model_a, model_b, winner, tstamp, anony = rated_fields(obj)
        assert isinstance(obj, dict)  # rated_fields has checked it
        record = cls(
            model_a=model_a,
            model_b=model_b,
            outcome=WINNER_TO_OUTCOME[winner],
            tstamp=tstamp,
            question_id=_optional_text(obj, "question_id"),
            judge=_optional_text(obj, "judge"),
            anony=anony is not False,
            conversation_a=_conversation(obj, "conversation_a"),
            conversation_b=_conversation(obj, "conversation_b"),
            turn=_turn(obj),
            language=_optional_text(obj, "language") or "unknown",
        )
        record.exchanges()  # two sides that asked different things are not one battle
        return record

    @classmethod
    def coerce(cls, value: BattleRecord | Mapping[str, Any]) -> BattleRecord:
        """A record from itself or from a mapping of the same field names (`outcome`, or a
        FastChat `winner`); conversations may be lists of {role, content} dicts."""
        if isinstance(value, BattleRecord):
            return value
        outcome = value["outcome"] if "outcome" in value else WINNER_TO_OUTCOME.get(value.get("winner", ""), "")
        return cls(
            model_a=value["model_a"],
            model_b=value["model_b"],
            outcome=outcome,
            tstamp=None if value.get("tstamp") is None else float(value["tstamp"]),
            question_id=None if value.get("question_id") is None else str(value["question_id"]),
            judge=None if value.get("judge") is None else str(value["judge"]),
            anony=value.get("anony") is not False,
            conversation_a=tuple(_message(turn) for turn in value.get("conversation_a") or ()),
            conversation_b=tuple(_message(turn) for turn in value.get("conversation_b") or ()),
            turn=int(value.get("turn", 1)),
            language=value.get("language") or "unknown",
        )


# --- checking fields --------------------------------------------------------------------------------


def rated_fields(obj: object) -> RatedFields:
    """What ratings use of a parsed battle (`RatedFields`); ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f'not a JSON object but {_json_kind(obj)}: a battle is {{"model_a": ..., ...}}')
    model_a, model_b = _name(obj, "model_a"), _name(obj, "model_b")
    if model_a == model_b:
        raise ValueError(f"model_a and model_b are both {model_a!r}: a battle needs two different variants")
    if "winner" not in obj:
        raise ValueError(f"no winner (expected one of {_WINNER_CHOICES})")
    winner = obj["winner"]
    if not isinstance(winner, str) or winner not in WINNER_TO_OUTCOME:
        raise ValueError(f"unknown winner {winner!r} (expected one of {_WINNER_CHOICES})")
    return model_a, model_b, cast(Winner, winner), _tstamp(obj), _flag(obj, "anony")


def _json_kind(value: object) -> str:
    kinds = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")


def _name(obj: dict[str, Any], field: str) -> str:
    if field not in obj:
        raise ValueError(f"no {field}")
    value = obj[field]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a variant name, not {value!r}")
    return value


def _tstamp(obj: dict[str, Any]) -> float | None:
    value = obj.get("tstamp")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"tstamp must be a number of seconds, not {value!r}")
    return float(value)


def _optional_text(obj: dict[str, Any], field: str) -> str | None:
    value = obj.get(field)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # some exports number their questions
    raise ValueError(f"{field} must be text, not {value!r}")


def _flag(obj: dict[str, Any], field: str) -> bool | None:
    value = obj.get(field)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{field} must be true or false, not {value!r}")
    return value


def _turn(obj: dict[str, Any]) -> int:
    value = obj.get("turn", 1)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"turn must be a whole number from 1, not {value!r}")
    return value


def _conversation(obj: dict[str, Any], field: str) -> tuple[Message, ...]:
    value = obj.get(field)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{field} must be a list of {{role, content}} messages, not {_json_kind(value)}")
    messages = []
    for index, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str):
            raise ValueError(f"{field}[{index}] must be a {{role, content}} message")
        if not isinstance(turn.get("content"), str):
            raise ValueError(f"{field}[{index}].content must be text (multimodal content is not supported)")
        messages.append(Message(turn["role"], turn["content"]))
    return tuple(messages)


def _turns(conversation: tuple[Message, ...]) -> list[tuple[str, str]]:
    """(user message, the answer after it) of each turn; messages of other roles are read past."""
    turns: list[tuple[str, str]] = []
    for message in conversation:
        if message.role == "user":
            turns.append((message.content, ""))
        elif message.role == "assistant" and turns:
            turns[-1] = (turns[-1][0], message.content)
    return turns


def _message(turn: Message | Mapping[str, Any]) -> Message:
    if isinstance(turn, Message):
        return turn
    return Message(str(turn["role"]), "" if turn.get("content") is None else str(turn["content"]))


# --- writing ----------------------------------------------------------------------------------------


def write_battles(
    records: Iterable[BattleRecord | Mapping[str, Any]], out: Path | str | IO[str], *, format: str = "jsonl"
) -> int:
    """Write battles as FastChat JSONL (one per line) or a JSON array (one item per line), to a
    path or an open text stream; return how many were written.

    Records may be `BattleRecord`s or mappings of the same fields (see `BattleRecord.coerce`). A
    path is written beside the target and renamed into place when complete.
    """
    if format not in FORMATS:
        raise UsageError(f"unknown battles format {format!r}: expected one of {', '.join(FORMATS)}")
    if isinstance(out, str | Path):
        return _write_to_path(Path(out), records, format)
    return _write_stream(out, records, format)


def _write_stream(stream: IO[str], records: Iterable[BattleRecord | Mapping[str, Any]], fmt: str) -> int:
    count = 0
    if fmt == "json":
        stream.write("[")
    for record in records:
        line = json.dumps(BattleRecord.coerce(record).to_fastchat(), ensure_ascii=False, allow_nan=False)
        if fmt == "json":
            stream.write(("\n" if count == 0 else ",\n") + line)  # one item per line: easy to read and grep
        else:
            stream.write(line + "\n")
        count += 1
    if fmt == "json":
        stream.write("\n]\n" if count else "]\n")
    return count


def _write_to_path(path: Path, records: Iterable[BattleRecord | Mapping[str, Any]], fmt: str) -> int:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as stream:
            count = _write_stream(stream, records, fmt)
        os.replace(partial, path)
    except OSError as exc:
        raise UsageError(f"cannot write battles to {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return count
