"""The memory-aware pool: the pure decisions (`arena.pool`), then loading and unloading real demo
variants through the services, as the Variants tab and its API endpoints do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from arena.errors import UsageError
from arena.lineup import MemoryPolicy, create_lineup
from arena.pool import Budget, Footprint, parse_size, plan_load, pool_of
from arena.settings import Settings
from backends.demo.build import ensure_built
from backends.registry import VariantSpec, default_registry
from storage import open_store
from tests.support.ui import drain
from ui.battle import BattleFlow, BattleState
from ui.compare import CompareFlow, CompareState, FormOptions
from ui.services import ArenaServices

GIB = 1024**3
MIB = 1024**2


def test_sizes_parse_in_binary_and_decimal_units() -> None:
    assert parse_size("24GiB") == 24 * GIB
    assert parse_size("20GB") == 20 * 10**9
    assert parse_size("512 MiB") == 512 * MIB
    assert parse_size("1.5G") == int(1.5 * GIB)
    assert parse_size("1000") == 1000
    with pytest.raises(UsageError, match="not a size"):
        parse_size("lots")


def test_a_budget_is_ram_alone_or_per_pool() -> None:
    assert Budget.parse("24GiB").caps == {"cpu": 24 * GIB}
    assert Budget.parse("cpu=16GiB,0=20GiB,cuda:1=8GiB").caps == {"cpu": 16 * GIB, "0": 20 * GIB, "1": 8 * GIB}
    assert Budget.parse("0=20GiB").over(Budget.parse("cpu=8GiB,0=40GiB")).caps == {"cpu": 8 * GIB, "0": 20 * GIB}
    for bad in ("", "disk=1GiB", "0=much"):
        with pytest.raises(UsageError):
            Budget.parse(bad)


def test_devices_count_in_their_pool() -> None:
    assert [pool_of(d) for d in ("cpu", "cuda", "cuda:1", "mps", "")] == ["cpu", "0", "1", "cpu", ""]


def test_a_variant_that_fits_loads() -> None:
    loaded = {"a": Footprint(4 * GIB, "cpu", measured=True)}
    plan = plan_load("b", Footprint(3 * GIB, "cpu"), loaded, Budget.parse("8GiB"))
    assert plan.action == "load" and plan.unload == ()


def test_a_variant_that_does_not_fit_is_refused_with_the_estimate_what_is_loaded_and_the_budget() -> None:
    loaded = {"old": Footprint(5 * GIB, "cpu", last_used=1.0, measured=True),
              "new": Footprint(2 * GIB, "cpu", last_used=2.0, measured=True)}
    plan = plan_load("big", Footprint(3 * GIB, "cpu"), loaded, Budget.parse("8GiB"))
    assert plan.action == "refuse" and not plan.allowed
    for part in ("big needs 3.0 GiB estimated", "RAM already holds 7.0 GiB of its 8.0 GiB budget",
                 "old 5.0 GiB measured", "unload old first", "--max-memory", "--evict lru"):
        assert part in plan.message


def test_a_variant_bigger_than_the_whole_budget_is_refused_even_with_eviction() -> None:
    plan = plan_load("31b", Footprint(60 * GIB, "0"), {}, Budget.parse("0=20GiB"), evict=True)
    assert plan.action == "refuse"
    assert "31b needs 60.0 GiB estimated but the GPU 0 budget is 20.0 GiB" in plan.message


def test_eviction_unloads_the_least_recently_used_of_the_same_pool_first() -> None:
    loaded = {"recent": Footprint(3 * GIB, "cpu", last_used=30.0), "oldest": Footprint(3 * GIB, "cpu", last_used=10.0),
              "older": Footprint(3 * GIB, "cpu", last_used=20.0), "gpu": Footprint(9 * GIB, "0", last_used=0.0)}
    plan = plan_load("x", Footprint(5 * GIB, "cpu"), loaded, Budget.parse("cpu=10GiB,0=10GiB"), evict=True)
    assert plan.action == "evict" and plan.unload == ("oldest", "older")


def test_remote_variants_take_no_memory_here() -> None:
    budget = Budget.parse("1GiB")
    assert plan_load("ollama", Footprint(0, ""), {"a": Footprint(GIB, "cpu")}, budget).action == "load"
    # a remote variant already loaded does not count either
    assert plan_load("b", Footprint(GIB // 2, "cpu"), {"remote": Footprint(0, "")}, budget).action == "load"


def test_a_pool_without_a_budget_takes_anything() -> None:
    assert plan_load("x", Footprint(99 * GIB, "1"), {}, Budget.parse("cpu=1GiB")).action == "load"


# ------------------------------------------------------------------ services on demo variants
@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Iterator[ArenaServices]:
    """demo:e2b and demo:e4b under a RAM budget that holds demo:e2b's estimate and half of demo:e4b's:
    demo:e2b loads at start, demo:e4b is refused."""
    for name in ("e2b", "e4b"):
        ensure_built(demo_cache, name)
    data = tmp_path_factory.mktemp("pool")
    settings = Settings(data, demo_cache, data / "arena.db")
    specs = [VariantSpec.parse(s) for s in ("demo:e2b", "demo:e4b")]
    lineup = create_lineup(specs, default_registry(), settings, memory=MemoryPolicy(cache_dir=demo_cache))
    e2b, e4b = (lineup.footprint(v).bytes for v in lineup.variants)
    assert e2b and e4b
    lineup.memory = replace(lineup.memory, budget=Budget({"cpu": e2b + e4b // 2}))
    services = ArenaServices(lineup, open_store(settings.db_path), seed=0, timeout_s=30)
    services.start_loading()
    services.wait_loaded(120)
    yield services
    services.close()


def _with(services: ArenaServices, *, ram: int, evict: bool = False) -> None:
    services.lineup.memory = replace(services.lineup.memory, budget=Budget({"cpu": ram}), evict=evict)


def _estimate(services: ArenaServices, name: str) -> int:
    variant = services.variant(name)
    return services.lineup.footprint(replace(variant, report=None)).bytes


def test_at_start_a_variant_that_would_not_fit_is_unavailable_with_why_and_the_others_load(
    pool: ArenaServices,
) -> None:
    assert pool.variant("demo:e2b").available
    refused = pool.variant("demo:e4b").state
    assert refused.phase == "unavailable"
    assert "demo:e4b needs" in refused.detail and "estimated" in refused.detail and "budget" in refused.detail
    assert "RAM" in pool.memory_summary()


def test_a_refused_load_says_what_to_do_and_leaves_the_others_loaded(pool: ArenaServices) -> None:
    with pytest.raises(UsageError, match=r"unload demo:e2b first.*--evict lru"):
        pool.load_variant("demo:e4b")
    assert pool.variant("demo:e2b").available and pool.variant("demo:e4b").state.phase == "unavailable"


def test_an_unloaded_variant_is_never_drawn_and_compare_says_so_until_it_is_loaded_again(
    pool: ArenaServices,
) -> None:
    _with(pool, ram=1024 * GIB)
    assert pool.load_variant("demo:e4b").startswith("demo:e4b: ready")
    assert pool.unload_variant("demo:e4b") == "demo:e4b: unloaded"
    variant = pool.variant("demo:e4b")
    assert variant.state.phase == "unloaded" and variant.state.settled
    assert [v.name for v in pool.lineup.available] == ["demo:e2b"]
    with pytest.raises(UsageError, match="at least two loaded variants"):
        drain(BattleFlow(pool).run(BattleState(), {"text": "hi", "files": []}, FormOptions(max_new_tokens=4)))
    outcomes = drain(CompareFlow(pool).run(CompareState(), ["demo:e2b", "demo:e4b"], {"text": "hi", "files": []},
                                           FormOptions(max_new_tokens=4)))
    results = {r.variant: r for r in outcomes[-1].results if r is not None}
    assert results["demo:e2b"].ok
    assert "unloaded: load it on the Variants tab" in (results["demo:e4b"].error or "")

    assert pool.load_variant("demo:e4b").startswith("demo:e4b: ready")
    assert pool.load_variant("demo:e4b") == "demo:e4b is already ready"
    assert pool.variant("demo:e4b").available and len(pool.lineup.available) == 2


def test_with_eviction_the_least_recently_used_variant_is_unloaded_to_make_room(pool: ArenaServices) -> None:
    _with(pool, ram=1024 * GIB)
    pool.load_variant("demo:e4b")
    pool.unload_variant("demo:e2b")
    pool.mark_used(["demo:e4b"])
    e4b = pool.lineup.footprint(pool.variant("demo:e4b"))
    assert e4b.measured and e4b.last_used > 0
    _with(pool, ram=_estimate(pool, "demo:e2b") + e4b.bytes - 1, evict=True)
    status = pool.load_variant("demo:e2b")
    assert status.startswith("demo:e2b: ready") and "unloaded demo:e4b (least recently used)" in status
    assert pool.variant("demo:e4b").state.phase == "unloaded" and pool.variant("demo:e2b").available
