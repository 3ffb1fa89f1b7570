"""Memory estimates, fit verdicts and recommendations (arena.hardware): pure arithmetic, checked by
hand and against the parameter counts of real transformers models built from the same configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena.gemma4_sizes import Part, model_size
from arena.gemma4_variants import VARIANTS, find_architecture
from arena.hardware import (
    DTYPES,
    GIB,
    TASKS,
    Gpu,
    Machine,
    assess,
    estimate,
    estimate_for_config,
    fit,
    kv_cache_bytes,
    param_checks,
    part_bytes,
    recommend,
    usable_bytes,
    weights_bytes,
)


def gpu_box(*gib: int, ram_gib: int = 128) -> Machine:
    return Machine(16, ram_gib * GIB, ram_gib * GIB, tuple(Gpu(f"GPU{i}", g * GIB) for i, g in enumerate(gib)))


def laptop(ram_gib: int) -> Machine:
    return Machine(8, ram_gib * GIB, ram_gib * GIB)


# --- arithmetic by hand ----------------------------------------------------------------------------------


def test_31b_text_parameters_and_bf16_weights_match_the_arithmetic_by_hand() -> None:
    hidden, vocab, heads, mlp = 5376, 262_144, 32, 21_504
    sliding = (hidden * heads * 256) + 2 * (hidden * 16 * 256) + (heads * 256 * hidden) + 256 + 256
    full = (hidden * heads * 512) + (hidden * 4 * 512) + (heads * 512 * hidden) + 512 + 512  # K = V: no v_proj
    common = 3 * hidden * mlp + 4 * hidden  # gate, up, down; four norms
    text = vocab * hidden + hidden + 50 * (sliding + common) + 10 * (full + common)
    size = model_size(VARIANTS["31B"].config())
    assert size.text_decoder.params == text
    weights = weights_bytes("31B", "bf16")
    assert weights.resident == 2 * (text + size.vision.params) and weights.offloadable == 0


def test_e2b_kv_cache_at_8k_matches_the_arithmetic_by_hand() -> None:
    # 35 layers, the last 20 KV-shared; of the 15 that store, every 5th is full attention.
    sliding = 12 * 512 * 2 * 1 * 256 * 2  # window 512, 1 KV head of 256, K and V, bf16
    full = 3 * 8192 * 2 * 1 * 512 * 2  # global head size 512
    kv = kv_cache_bytes("E2B", 8192)
    assert kv.total == sliding + full == 56_623_104
    assert any("20 KV-shared layers store none" in step for step in kv.steps)
    assert any("3 x 8,192 tokens x 2 x 1 x 512 x 2 B" in step for step in kv.steps)


def test_quantized_bytes_follow_bitsandbytes_rules() -> None:
    part = Part(params=1000, linear=640, linear_rows=10)
    assert part_bytes(part, "bf16") == 2000
    assert part_bytes(part, "int8") == 640 + 4 * 10 + 360 * 2  # int8 weights, fp32 row scales, the rest bf16
    assert part_bytes(part, "int4") == 320 + 4 * 10 + 360 * 2  # NF4: half a byte, one fp32 scale per 64


@pytest.mark.parametrize("name", list(VARIANTS))
def test_int4_is_smaller_than_int8_is_smaller_than_bf16(name: str) -> None:
    bf16, int8, int4 = (weights_bytes(name, dtype).total for dtype in DTYPES)
    assert int4 < int8 < bf16


def test_per_layer_embeddings_may_be_offloaded_and_moe_experts_stay_bf16_under_bitsandbytes() -> None:
    e4b = weights_bytes("E4B", "int4")
    assert e4b.offloadable == 2 * model_size(VARIANTS["E4B"].config()).per_layer_embeddings.params
    moe = weights_bytes("26B A4B", "int4")
    experts = model_size(VARIANTS["26B A4B"].config()).experts.params
    assert moe.offloadable == 0 and moe.resident > 2 * experts
    assert any("an engine that quantizes them too" in step for step in moe.steps)


def test_kv_grows_linearly_with_context_and_sliding_layers_stop_at_their_window() -> None:
    per_token_full = 4 * 2 * 2 * 512 * 2  # E4B: 4 storing full layers, 2 KV heads of 512
    per_token_sliding = 20 * 2 * 2 * 256 * 2  # 20 storing sliding layers, 2 KV heads of 256, window 512
    at = {n: kv_cache_bytes("E4B", n).total for n in (128, 256, 512, 1024, 2048)}
    assert at[256] == 2 * at[128] and at[512] == 4 * at[128]
    assert at[128] == 128 * (per_token_full + per_token_sliding)
    assert at[2048] - at[1024] == 1024 * per_token_full  # past the window only full layers grow
    assert kv_cache_bytes("E4B", 1024, batch=3).total == 3 * at[1024]
    assert kv_cache_bytes("E4B", 1024, dtype="fp8").total == at[1024] // 2


def test_kv_shared_layers_store_no_cache() -> None:
    config = VARIANTS["E4B"].config()
    config["text_config"]["num_kv_shared_layers"] = 0
    unshared = estimate_for_config(config, context_tokens=4096).kv.total
    assert unshared > kv_cache_bytes("E4B", 4096).total


def test_published_totals_agree_with_the_computed_counts() -> None:
    for name in VARIANTS:
        for line in param_checks(name):
            percent = float(line.rsplit("(", 1)[1].rstrip("%)"))
            assert abs(percent) < 5, line


# --- the same arithmetic on transformers configs -----------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_counts_equal_transformers_parameter_count(name: str) -> None:
    torch = pytest.importorskip("torch")
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    config = Gemma4Config(**VARIANTS[name].config())
    with torch.device("meta"):  # shapes only: no memory for 31B parameters
        model = Gemma4ForConditionalGeneration(config)
    counted = sum(p.numel() for p in model.parameters())
    assert model_size(config).total == counted
    assert estimate_for_config(config, "bf16", 0).weights.total == 2 * counted


@pytest.mark.parametrize("name", ["e2b", "e4b", "26b-a4b", "31b"])
def test_estimate_for_a_demo_config_is_its_parameter_count_times_bytes(demo_cache: Path, name: str) -> None:
    from transformers import AutoConfig

    from backends.demo.build import ensure_built

    folder = ensure_built(demo_cache, name)
    parameters = json.loads((folder / "gemma_arena_demo.json").read_text())["parameters"]
    for config in (json.loads((folder / "config.json").read_text()), AutoConfig.from_pretrained(folder)):
        weights = estimate_for_config(config, "bf16", context_tokens=0).weights.total
        assert abs(weights - 2 * parameters) <= 0.01 * 2 * parameters
    assert estimate_for_config(config, "int4").weights.total < weights


# --- fitting -------------------------------------------------------------------------------------------------


def test_headroom_leaves_a_tenth_and_a_fixed_reserve() -> None:
    assert usable_bytes(80 * GIB, 1 * GIB, 0.10) == 71 * GIB
    assert usable_bytes(1 * GIB, 2 * GIB, 0.10) == 0


def test_fit_verdicts_at_chosen_machine_sizes() -> None:
    assert fit(estimate("E2B", "bf16"), gpu_box(24)) == "fits"
    assert fit(estimate("31B", "bf16"), gpu_box(24, ram_gib=16)) == "does not fit"
    split = assess(estimate("31B", "bf16"), gpu_box(40, 40))
    assert (split.verdict, split.where) == ("fits", "2 GPUs")
    ple = assess(estimate("E4B", "bf16"), gpu_box(16, ram_gib=64))  # 14.9 GiB > 13.4 usable; 9.7 GiB without PLE
    assert ple.verdict == "fits with offload" and "per-layer-embedding" in ple.reason
    layers = assess(estimate("31B", "int4"), gpu_box(12, ram_gib=64))
    assert layers.verdict == "fits with offload" and "slow" in layers.reason
    assert fit(estimate("E2B", "int4"), laptop(64)) == "fits"
    on_disk = assess(estimate("E2B", "int4"), laptop(8))  # 6.4 GiB > 5.2 usable; 2.1 GiB without PLE
    assert on_disk.verdict == "fits with offload" and on_disk.where == "CPU RAM + disk"
    assert fit(estimate("26B A4B", "int4"), laptop(32)) == "does not fit"
    assert any("for the runtime" in step for step in assess(estimate("E2B"), gpu_box(24)).steps)


def test_free_gpu_memory_counts_when_known() -> None:
    busy = Machine(16, 64 * GIB, 64 * GIB, (Gpu("A100", 80 * GIB, free_bytes=10 * GIB),))
    assert fit(estimate("E4B", "bf16"), busy) != "fits"
    assert fit(estimate("E4B", "bf16"), gpu_box(80)) == "fits"


# --- recommending -------------------------------------------------------------------------------------------


def test_recommend_follows_the_seed_guide_on_a_big_gpu() -> None:
    box = gpu_box(80)
    picks = {task: recommend(box, task) for task in TASKS}
    assert {t: (r.variant.name if r.variant else None, r.dtype) for t, r in picks.items()} == {
        "chat": ("31B", "bf16"),
        "vision": ("31B", "bf16"),
        "coding/reasoning": ("31B", "bf16"),
        "agents/tools": ("26B A4B", "bf16"),
        "long documents": ("26B A4B", "bf16"),
        "audio": ("E4B", "bf16"),
    }
    assert all(r.fit is not None and r.fit.verdict == "fits" for r in picks.values())


def test_recommend_on_a_laptop_without_gpu_is_an_edge_model() -> None:
    chat = recommend(laptop(16), "chat")
    assert chat.variant is not None and chat.variant.name == "E4B" and chat.dtype == "int8"
    coding = recommend(laptop(64), "coding/reasoning")
    assert coding.variant is not None and coding.variant.name == "E4B"
    assert any("no GPU here" in reason for reason in coding.reasons)


def test_recommend_explains_a_guide_pick_that_does_not_fit() -> None:
    agents = recommend(gpu_box(24, ram_gib=64), "agents/tools")
    assert agents.variant is not None and agents.variant.name != "26B A4B"
    assert any(reason.startswith("26B A4B") and "experts" in reason for reason in agents.reasons)


def test_recommend_skips_variants_whose_context_is_too_short() -> None:
    long = recommend(gpu_box(24, ram_gib=64), "long documents", context_tokens=200_000)
    assert long.variant is not None and long.variant.context_tokens >= 200_000
    assert any("E4B: its context is 131,072 tokens" in reason for reason in long.reasons)


def test_recommend_says_when_nothing_fits() -> None:
    nothing = recommend(laptop(2), "chat")
    assert nothing.variant is None and "nothing fits" in nothing.reasons[-1]
    with pytest.raises(ValueError, match="unknown task"):
        recommend(laptop(16), "poetry")


def test_recommendation_separates_published_from_guessed_facts() -> None:
    pick = recommend(gpu_box(80), "coding/reasoning")
    assert pick.published and pick.guessed
    assert {f.source for f in pick.published} == {"published"} and {f.source for f in pick.guessed} == {"guessed"}


# --- the records -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_number_is_marked_and_says_where_it_comes_from(name: str) -> None:
    arch = VARIANTS[name]
    names = {f.name for f in arch.facts}
    for needed in (
        "num_hidden_layers",
        "num_key_value_heads",
        "head_dim",
        "global_head_dim",
        "layer_types",
        "sliding_window",
        "max_position_embeddings",
        "params_total",
    ):
        assert needed in names, needed
    assert all(f.source in ("published", "guessed") and f.where for f in arch.facts)
    assert arch.context_tokens in (131_072, 262_144)


def test_variants_are_found_by_their_names_ids_and_tags() -> None:
    for text in ("E4B", "e4b", "google/gemma-4-E4B-it", "gemma4:e4b", "hf:google/gemma-4-E4B-it?quantize=4bit"):
        found = find_architecture(text)
        assert found is not None and found.name == "E4B", text
    assert find_architecture("26b-a4b") is VARIANTS["26B A4B"]
    assert find_architecture("gemma4:e4b-it-q8_0") is None and find_architecture("demo:e4b") is None
