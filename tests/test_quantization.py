"""bitsandbytes 4-bit on the CPU: the same on every processor, and a clear error where it cannot run.

bitsandbytes 0.50 repacks 4-bit layers for a fused kernel on CPUs with AVX-512 BF16, and that
kernel asserts on layer sizes it cannot tile. These tests run on any CPU: the routing is checked
on real `Linear4bit` layers with the processor's answer set both ways (no kernel is called), and
the end-to-end load on this machine takes whichever path its CPU has.
"""

from __future__ import annotations

import asyncio

import pytest
import torch
from bitsandbytes.nn import Linear4bit

from arena.fanout import run_all
from arena.lineup import create_lineup, load_all
from arena.settings import Settings
from backends.base import Request
from backends.hf.quantization import route_unpackable_layers, unpackable_on_cpu
from backends.registry import default_registry


class TwoLayers(torch.nn.Module):
    def __init__(self, fast_kernel: bool) -> None:
        super().__init__()
        self.fits = Linear4bit(128, 64, compute_dtype=torch.bfloat16)
        self.odd = Linear4bit(128, 100, compute_dtype=torch.bfloat16)  # 100 outputs: not a multiple of 32
        for layer in (self.fits, self.odd):
            layer.support_avx512bf16_for_cpu = fast_kernel


def test_layer_sizes_the_packed_cpu_kernel_cannot_take() -> None:
    assert not unpackable_on_cpu(64, 128, 64)
    assert unpackable_on_cpu(100, 128, 64)  # outputs not a multiple of 32
    assert unpackable_on_cpu(64, 96, 64)  # inputs not a multiple of the block
    assert unpackable_on_cpu(64, 127, 1)  # odd inputs


def test_on_an_avx512_bf16_cpu_only_the_layers_that_do_not_fit_take_the_portable_path() -> None:
    model = TwoLayers(fast_kernel=True)
    assert route_unpackable_layers(model) == ["odd"]
    assert model.fits.support_avx512bf16_for_cpu is True
    assert model.odd.support_avx512bf16_for_cpu is False


def test_on_other_cpus_nothing_is_rerouted() -> None:
    model = TwoLayers(fast_kernel=False)
    assert route_unpackable_layers(model) == []


def test_4bit_demo_variant_loads_and_answers_on_this_cpu(settings: Settings) -> None:
    """The demo variants' towers have layer sizes the packed kernel cannot take (on an AVX-512 BF16
    CPU, 40 of e2b's 4-bit layers are routed); it loads and answers whatever this CPU is."""
    registry = default_registry()
    lineup = create_lineup([registry.parse("demo:e2b?quantize=4bit")], registry, settings)
    lineup = asyncio.run(load_all(lineup))
    try:
        (variant,) = lineup.variants
        assert variant.available, variant.error
        results = asyncio.run(run_all(lineup.variants, Request(prompt="hi", max_new_tokens=4)))
        assert results[0].ok and results[0].stats.output_tokens == 4, results[0].error
    finally:
        asyncio.run(lineup.close())


def test_4bit_that_bitsandbytes_cannot_run_here_fails_the_load_naming_the_cause(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a CPU bitsandbytes cannot serve looks like: an assertion from inside the library at the
    first forward. The variants run in this process (in_process=true) so the library can be made to
    fail so here; the load must turn it into the variant's reason, and the other variant, loaded at
    the same time in another thread of this process, goes on."""

    def fails(self: Linear4bit, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("N must be divisible by block_n")

    monkeypatch.setattr(Linear4bit, "forward", fails)
    registry = default_registry()
    specs = ["demo:e2b?quantize=4bit&in_process=true&label=e2b-4bit", "demo:e2b?in_process=true&label=e2b"]
    lineup = asyncio.run(load_all(create_lineup([registry.parse(s) for s in specs], registry, settings)))
    try:
        quantized, plain = lineup.variants
        assert not quantized.available
        assert quantized.error is not None
        assert "cannot run quantize=4bit on this cpu" in quantized.error
        assert "N must be divisible by block_n" in quantized.error  # the cause, named
        assert "without quantize" in quantized.error  # and what to do
        assert plain.available, plain.error
    finally:
        asyncio.run(lineup.close())
