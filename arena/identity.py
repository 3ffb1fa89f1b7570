"""Does an answer say which model wrote it? A pure check of text, no I/O.

A blind vote is only blind while the answers keep quiet about who wrote them: "As Gemma, I..."
or "I am ChatGPT, trained by OpenAI" tells the voter which side is which (or at least which
family), and a voter who likes a brand votes for it. FastChat's `clean_battle_data.py` drops
every battle whose messages contain one of its `IDENTITY_WORDS`; we keep the battle but flag it
(see `storage.records`), and ratings leave flagged battles out unless asked to include them.

Two kinds of match, case-insensitive, whole words only ("Googleplex" and "metadata" do not match;
"Gemma-4" does, the hyphen ends the word):

- a model family or maker from `IDENTITY_WORDS` ("Gemma", "Google", "ChatGPT", "Meta AI", ...),
  reported by its canonical spelling;
- a self-description that names a maker outside the list: "I am a language model trained by X",
  "as an AI assistant developed by X", "I'm an AI model from X", reported as the phrase found.

The check is deliberately broad, as FastChat's is: an answer about Google Maps is flagged too.
A false flag costs one battle's vote in the default ratings; a missed one biases them.
"""

from __future__ import annotations

import re
from functools import lru_cache

IDENTITY_WORDS: tuple[str, ...] = (
    # Google
    "Gemma",
    "Gemini",
    "Google",
    "DeepMind",
    "Bard",
    "PaLM",
    "LaMDA",
    # OpenAI
    "OpenAI",
    "ChatGPT",
    "GPT-3",
    "GPT-3.5",
    "GPT-4",
    "GPT-4o",
    "GPT-5",
    # Anthropic
    "Anthropic",
    "Claude",
    # Meta ("Meta" alone is an ordinary word: only its AI names count)
    "Llama",
    "Meta AI",
    "Meta Platforms",
    "Facebook AI",
    # others
    "Mistral",
    "Mixtral",
    "Qwen",
    "Tongyi",
    "Alibaba",
    "DeepSeek",
    "Grok",
    "xAI",
    "Copilot",
    "Microsoft",
    "Cohere",
    "Command R",
    "Vicuna",
    "LMSYS",
    "ChatGLM",
    "Zhipu",
    "Baichuan",
    "Moonshot AI",
    "Kimi",
    "Yi-34B",
    "01.AI",
    "Nemotron",
    "Olmo",
    "Tulu",
    "Tülu",
    "Allen AI",
    "Hugging Face",
)
"""Families and makers whose mention in an answer flags the battle (cf. FastChat's list)."""

_CANONICAL = {word.casefold(): word for word in IDENTITY_WORDS}
# Plain substring checks first (C speed, ~0.1 us each): a regex alternation of every word would
# try each one at every position, ~0.3 ms for a page of text, and imports check millions.
_FIRST_PARTS = {word: word.casefold().split()[0] for word in IDENTITY_WORDS}
_SELF_HINTS = ("i am", "i'm", "i was", "as a", "as an", "as the")
_NOUN_HINTS = ("model", "assistant", "chatbot", "llm", " ai ", " ai,")
_MAKER_HINTS = ("by", "from")


@lru_cache(maxsize=512)
def _words_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """Whole words (no letter, digit or _ on either side), longest first so "GPT-4o" wins over
    "GPT-4"; a space in a word matches any run of white space."""
    alternation = "|".join(re.escape(word).replace(r"\ ", r"\s+") for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


_WORDS = _words_pattern(IDENTITY_WORDS)
# "I am (a|an) ... model|assistant|AI|chatbot ... trained|developed|... by|from X", X capitalised
_SELF = r"\b(?:I\s+am|I'm|I\s+was|as)\s+(?:an?|the)\s+(?:[\w-]+\s+){0,4}?(?:model|assistant|AI|chatbot|LLM)\b"
_MAKER = re.compile(
    _SELF + r"[^.!?\n]{0,60}?\b(?:(?:trained|developed|created|built|made|designed|released|provided|produced)\s+by"
    r"|by|from)\s+(?P<maker>(?-i:[A-Z0-9])[\w.&-]*(?:\s+(?-i:[A-Z])[\w.&-]*){0,2})",
    re.IGNORECASE,
)


def _named(part: str) -> list[str]:
    """The listed words `part` names, as written in IDENTITY_WORDS, in order of appearance."""
    lowered = part.casefold()
    candidates = tuple(word for word, first in _FIRST_PARTS.items() if first in lowered)
    if not candidates:
        return []
    found = (re.sub(r"\s+", " ", match.group(0)).casefold() for match in _words_pattern(candidates).finditer(part))
    return [_CANONICAL.get(word, word) for word in found]


def _self_descriptions(part: str) -> list[str]:
    """Self-descriptions in `part` that name a maker not in the list."""
    lowered = part.casefold()
    if not (
        any(hint in lowered for hint in _SELF_HINTS)
        and any(hint in lowered for hint in _NOUN_HINTS)
        and any(hint in lowered for hint in _MAKER_HINTS)
    ):
        return []
    phrases = []
    for match in _MAKER.finditer(part):
        maker = match.group("maker").split()[0].rstrip(".&-")
        if not _WORDS.fullmatch(maker):  # a listed name is reported by itself
            phrases.append(re.sub(r"\s+", " ", match.group(0)).strip().rstrip(".&-"))
    return phrases


def identity_words(text: str, thinking: str = "") -> tuple[str, ...]:
    """The model families, makers and self-descriptions that `text` and `thinking` name, each
    once, in the order they first appear (answer first); empty when the answer names none.

    >>> identity_words("Sure! As Gemma, an open model by Google DeepMind, I can help.")
    ('Gemma', 'Google', 'DeepMind')
    >>> identity_words("I am a large language model trained by Acme Labs.")
    ('I am a large language model trained by Acme Labs',)
    >>> identity_words("The metadata says the llamas are fine.")
    ()
    """
    found: dict[str, None] = {}
    for part in (text, thinking):
        if part:
            found.update(dict.fromkeys(_named(part)))
            found.update(dict.fromkeys(_self_descriptions(part)))
    return tuple(found)


def names_identity(text: str, thinking: str = "") -> bool:
    """Whether the answer (or its thinking) names a model family or maker: `identity_words`."""
    return bool(identity_words(text, thinking))
