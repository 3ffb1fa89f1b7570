"""The built-in demo variants: real Gemma 4 classes, built deterministically, in proportion."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from backends.demo.build import ensure_built, model_dir
from backends.demo.catalog import VARIANTS


@pytest.fixture(scope="module")
def built(demo_cache: Path) -> dict[str, Path]:
    return {name: ensure_built(demo_cache, name) for name in VARIANTS}


def _config(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "config.json").read_text())


def test_each_stand_in_has_the_real_variants_architecture(built: dict[str, Path]) -> None:
    e2b, e4b, moe, dense = (_config(built[n]) for n in ("e2b", "e4b", "26b-a4b", "31b"))
    for config in (e2b, e4b, moe, dense):
        assert config["model_type"] == "gemma4"
        assert config["architectures"] == ["Gemma4ForConditionalGeneration"]
        assert config["vision_config"] is not None
    for edge in (e2b, e4b):
        assert edge["audio_config"] is not None
        assert edge["text_config"]["hidden_size_per_layer_input"] > 0  # per-layer embeddings
    for big in (moe, dense):
        assert big["audio_config"] is None
    assert moe["text_config"]["enable_moe_block"] and moe["text_config"]["num_experts"] == 16
    assert not dense["text_config"].get("enable_moe_block")


def test_sizes_keep_the_real_variants_order(built: dict[str, Path]) -> None:
    params = {n: json.loads((p / "gemma_arena_demo.json").read_text())["parameters"] for n, p in built.items()}
    assert params["e2b"] < params["e4b"] < params["26b-a4b"] < params["31b"]
    assert 4 < params["31b"] / params["e2b"] < 8  # real: 31B / 5.1B total = ~6
    size = (built["31b"] / "model.safetensors").stat().st_size
    assert size < 64 * 2**20  # small enough for CI


def test_files_say_they_are_random_weight_stand_ins(built: dict[str, Path]) -> None:
    for name, folder in built.items():
        meta = json.loads((folder / "gemma_arena_demo.json").read_text())
        assert "random-weight" in meta["description"] and meta["stands_for"] == VARIANTS[name].stands_for


def test_tokenizer_has_gemma4_markers_as_single_tokens(built: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built["e2b"])
    markers = ("<|turn>", "<turn|>", "<|think|>", "<|channel>", "<channel|>", "<|tool_call>", "<|image|>", "<|audio|>")
    for marker in markers:
        assert len(tokenizer.encode(marker, add_special_tokens=False)) == 1, marker


def test_chat_template_follows_gemma4_turns_thinking_and_tools(built: dict[str, Path]) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(built["e2b"])
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]},
    ]
    tool = {"type": "function", "function": {"name": "ping", "description": "Ping", "parameters": {}}}
    text = processor.apply_chat_template(
        messages, tools=[tool], enable_thinking=True, add_generation_prompt=True, tokenize=False
    )
    assert text == (
        "<bos><|turn>system\n<|think|>\nBe brief."
        '<|tool>declaration:ping{description:<|"|>Ping<|"|>,parameters:{}}<tool|><turn|>\n'
        "<|turn>user\n<|image|>Hi<turn|>\n<|turn>model\n"
    )
    plain = processor.apply_chat_template(messages[1:], add_generation_prompt=True, tokenize=False)
    assert plain == "<bos><|turn>user\n<|image|>Hi<turn|>\n<|turn>model\n"


def test_building_twice_gives_identical_files(tmp_path: Path, built: dict[str, Path]) -> None:
    again = ensure_built(tmp_path, "e2b")
    assert again == model_dir(tmp_path, "e2b")
    for file in ("model.safetensors", "tokenizer.json", "config.json"):
        first = hashlib.sha256((built["e2b"] / file).read_bytes()).hexdigest()
        assert hashlib.sha256((again / file).read_bytes()).hexdigest() == first, file


def test_the_demo_corpus_names_no_model_family_or_maker() -> None:
    """Demo answers are random tokens of this corpus: a word like "Gemma" in it would flag demo
    battles as naming their model (arena/identity.py) and keep them out of the ratings."""
    from arena.identity import identity_words
    from backends.demo import build

    assert identity_words(" ".join(build._WORDS)) == ()
