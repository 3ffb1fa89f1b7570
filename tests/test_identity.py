"""Whether an answer names a model family or maker (arena.identity): what flags a battle."""

from __future__ import annotations

import pytest

from arena.identity import IDENTITY_WORDS, identity_words, names_identity


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("I'm Gemma, a lightweight open model.", ("Gemma",)),
        ("Built on gemini technology by google deepmind", ("Gemini", "Google", "DeepMind")),
        ("I am ChatGPT, a model by OpenAI.", ("ChatGPT", "OpenAI")),
        ("Claude here, made by Anthropic.", ("Claude", "Anthropic")),
        ("As LLAMA 3 from Meta AI, I think...", ("Llama", "Meta AI")),
        ("Mistral and Qwen disagree.", ("Mistral", "Qwen")),
        ("GPT-4o beats GPT-4 here.", ("GPT-4o", "GPT-4")),
        ("gemma-4-e2b-it answering", ("Gemma",)),  # a hyphen ends the word
    ],
)
def test_known_families_and_makers_are_found_case_insensitively_by_their_canonical_name(
    text: str, found: tuple[str, ...]
) -> None:
    assert identity_words(text) == found
    assert names_identity(text)


@pytest.mark.parametrize(
    "text",
    [
        "Googleplex and Gemmas are not words we know.",  # whole words only
        "The metadata lists three llamas.",  # plural animals, and 'meta' alone is an ordinary word
        "Here is a recipe for bread: flour, water, salt.",
        "As a model from the 1990s, the car is reliable.",  # a self-description names no maker
        "",
    ],
)
def test_ordinary_text_names_nobody(text: str) -> None:
    assert identity_words(text) == ()
    assert not names_identity(text)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("I am a large language model trained by Acme Labs.", "I am a large language model trained by Acme Labs"),
        ("As an AI model from Initech, I cannot browse.", "As an AI model from Initech"),
        ("I'm an assistant developed by Zeta.", "I'm an assistant developed by Zeta"),
        ("I am a model by Umbrella, happy to help", "I am a model by Umbrella"),
    ],
)
def test_a_self_description_naming_an_unlisted_maker_is_reported_as_the_phrase(text: str, phrase: str) -> None:
    assert identity_words(text) == (phrase,)


def test_a_self_description_naming_a_listed_maker_reports_the_maker_once() -> None:
    assert identity_words("I am an AI assistant developed by OpenAI.") == ("OpenAI",)


def test_thinking_counts_too_and_words_are_reported_once_in_order_of_appearance() -> None:
    assert identity_words("Gemma says hi. gemma again.", thinking="Remember: I am Gemma by Google.") == (
        "Gemma",
        "Google",
    )
    assert identity_words("", thinking="Qwen would say otherwise") == ("Qwen",)


def test_every_listed_word_is_found_as_written() -> None:
    for word in IDENTITY_WORDS:
        assert identity_words(f"Answer: {word}, indeed.") == (word,), word
