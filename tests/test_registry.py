"""Variant specs, their options, the registry of prefixes and the TOML variant file."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena.errors import SpecError, UsageError
from arena.settings import Settings
from backends.hf.options import HFOptions
from backends.registry import BackendContext, VariantSpec, default_registry
from backends.variant_file import read_variant_file


def test_spec_options_come_after_a_question_mark() -> None:
    spec = VariantSpec.parse("hf:google/gemma-4-E4B-it?dtype=bfloat16&quantize=4bit")
    assert (spec.prefix, spec.target) == ("hf", "google/gemma-4-E4B-it")
    assert dict(spec.options) == {"dtype": "bfloat16", "quantize": "4bit"}
    assert spec.label == "hf:google/gemma-4-E4B-it"


def test_a_label_option_names_the_variant() -> None:
    assert VariantSpec.parse("demo:e2b?label=small").label == "small"


def test_targets_may_contain_colons() -> None:
    spec = VariantSpec.parse("ollama:gemma4:e4b")
    assert (spec.prefix, spec.target) == ("ollama", "gemma4:e4b")


def test_unknown_prefix_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match="known prefixes are demo:, hf:"):
        default_registry().parse("tpu:gemma")


def test_spec_without_prefix_is_refused_with_examples() -> None:
    with pytest.raises(SpecError, match="PREFIX:TARGET"):
        default_registry().parse("gemma")


def test_unknown_demo_name_lists_the_demo_variants(tmp_path: Path) -> None:
    context = BackendContext(Settings(tmp_path, tmp_path, tmp_path / "a.db"))
    with pytest.raises(SpecError, match="demo:e2b, demo:e4b, demo:26b-a4b, demo:31b"):
        default_registry().create("demo:e9b", context)


def test_hf_options_are_validated() -> None:
    opts = HFOptions.from_spec_options(
        "m", {"dtype": "float16", "quantize": "8bit", "max_memory": "0=20GiB,cpu=64GiB", "threads": "3"}
    )
    assert opts.max_memory == {"0": "20GiB", "cpu": "64GiB"} and opts.threads == 3
    for bad, message in [
        ({"dtype": "fp8"}, "dtype"),
        ({"quantize": "3bit"}, "quantize"),
        ({"threads": "zero"}, "threads"),
        ({"max_memory": "20GiB"}, "max_memory"),
        ({"colour": "blue"}, "unknown option"),
    ]:
        with pytest.raises(SpecError, match=message):
            HFOptions.from_spec_options("m", bad)


def test_assigned_cpu_threads_apply_unless_the_spec_sets_its_own(tmp_path: Path) -> None:
    registry = default_registry()
    context = BackendContext(Settings(tmp_path, tmp_path, tmp_path / "a.db"), cpu_threads=3)
    assert registry.create("demo:e2b", context).options.threads == 3  # type: ignore[attr-defined]
    assert registry.create("demo:e2b?threads=1", context).options.threads == 1  # type: ignore[attr-defined]


def test_variant_file_turns_keys_into_options(tmp_path: Path) -> None:
    file = tmp_path / "variants.toml"
    file.write_text(
        '[[variants]]\nspec = "demo:e2b"\n\n'
        '[[variants]]\nspec = "hf:google/gemma-4-E4B-it"\nlabel = "E4B 4-bit"\nquantize = "4bit"\n'
        'in_process = false\nmax_memory = { 0 = "20GiB", cpu = "64GiB" }\n'
    )
    first, second = read_variant_file(file, default_registry())
    assert first.label == "demo:e2b"
    assert second.label == "E4B 4-bit"
    assert dict(second.options) == {
        "label": "E4B 4-bit", "quantize": "4bit", "in_process": "false", "max_memory": "0=20GiB,cpu=64GiB"
    }
    assert HFOptions.from_spec_options(second.target, second.options).max_memory == {"0": "20GiB", "cpu": "64GiB"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not toml [", "not valid TOML"),
        ("title = 'x'", "no \\[\\[variants\\]\\] entries"),
        ("[[variants]]\nlabel = 'x'", "entry 1 needs a spec"),
        ("[[variants]]\nspec = 'nope:x'", "entry 1: unknown variant spec"),
    ],
)
def test_bad_variant_file_says_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "v.toml"
    file.write_text(content)
    with pytest.raises(UsageError, match=message):
        read_variant_file(file, default_registry())
