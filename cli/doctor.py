"""`python app.py doctor`: this machine, the remote servers of a variant file, and which Gemma 4
variant fits here (weights + KV cache per variant and dtype, with the arithmetic), then the seed
article's recommendation for a task."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from arena import hardware
from arena.gemma4_variants import VARIANTS, Fact
from arena.machine import Probe, probe
from arena.settings import Settings
from arena.units import format_bytes
from backends.registry import VariantSpec, default_registry
from cli import EXIT_OK

#: Seconds a server has to answer its listing.
CHECK_TIMEOUT_S = 2.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "doctor",
        help="check this machine and the variant file's servers; which Gemma 4 variant fits here",
        description="Print the machine (CPU, RAM, GPUs, free disk), whether each ollama:/openai: server of the "
        "variant file answers, the memory each Gemma 4 variant needs per dtype at a context (weights + KV "
        "cache, with the arithmetic) and whether it fits, then the variant the seed article's decision guide "
        "recommends for a task. Every architecture number is marked published or guessed.",
    )
    p.add_argument("--json", action="store_true", help="print JSON (with every estimate's arithmetic)")
    p.add_argument(
        "--context",
        type=int,
        default=8192,
        metavar="N",
        help="tokens of context to size the KV cache for (default 8192)",
    )
    p.add_argument("--task", choices=hardware.TASKS, default="chat", help="what to recommend a variant for")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a TOML variant file whose ollama:/openai: servers to check (without it: the default Ollama server)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="show the arithmetic of every estimate and every fact, not only the recommended one's",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.context < 1:
        from arena.errors import UsageError

        raise UsageError(f"--context must be at least 1 token, not {args.context}")
    found = probe({"data": settings.data_dir, "cache": settings.cache_dir})
    endpoints = asyncio.run(check_endpoints(_endpoints_of(args.config)))
    rows = [
        _row(hardware.estimate(name, dtype, args.context), found.machine)
        for name in VARIANTS
        for dtype in hardware.DTYPES
    ]
    advice = hardware.recommend(found.machine, args.task, args.context)
    report = _report(found, endpoints, rows, advice, args.context)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_text(report, explain=args.explain))
    return EXIT_OK


# --- remote servers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    spec: str
    url: str
    #: what the listing should name: the Ollama tag or the OpenAI model
    model: str
    reachable: bool = False
    detail: str = ""


def _ollama(spec: VariantSpec) -> Endpoint:
    from backends.ollama import OllamaOptions

    options = OllamaOptions.from_spec_options(spec.target, spec.options)
    return Endpoint(str(spec), f"{options.host}/api/tags", options.full_tag)


def _openai(spec: VariantSpec) -> Endpoint:
    from backends.openai_compat import OpenAIOptions

    options = OpenAIOptions.from_spec_options(spec.target, spec.options)
    return Endpoint(str(spec), f"{options.base_url}/models", options.model)


#: How each remote kind of spec is checked: a listing a healthy server answers quickly.
_CHECKS: dict[str, Callable[[VariantSpec], Endpoint]] = {"ollama": _ollama, "openai": _openai}


def _endpoints_of(config: str | None) -> list[Endpoint]:
    if config is None:
        from backends.ollama.options import DEFAULT_HOST, normalize_host

        host = normalize_host(os.environ.get("OLLAMA_HOST") or DEFAULT_HOST)
        return [Endpoint("the default Ollama server (no --config)", f"{host}/api/tags", "")]
    from backends.variant_file import read_variant_file

    return [
        _CHECKS[spec.prefix](spec) for spec in read_variant_file(config, default_registry()) if spec.prefix in _CHECKS
    ]


async def check_endpoints(
    endpoints: list[Endpoint], timeout_s: float = CHECK_TIMEOUT_S, transport: httpx.AsyncBaseTransport | None = None
) -> list[Endpoint]:
    """Each endpoint with a GET of its listing: reachable when it answers 2xx within the timeout."""
    async with httpx.AsyncClient(timeout=timeout_s, transport=transport) as client:
        return list(await asyncio.gather(*(_check(client, e, timeout_s) for e in endpoints)))


async def _check(client: httpx.AsyncClient, endpoint: Endpoint, timeout_s: float) -> Endpoint:
    try:
        response = await client.get(endpoint.url)
    except httpx.TimeoutException:
        return _answer(endpoint, False, f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return _answer(endpoint, False, f"cannot connect: {exc or type(exc).__name__}")
    if not response.is_success:
        return _answer(endpoint, False, f"answers HTTP {response.status_code} to GET {endpoint.url}")
    try:
        body = response.json()
        names = {m.get("model") or m.get("name") for m in body.get("models", [])} | {
            m.get("id") for m in body.get("data", [])
        }
    except (ValueError, AttributeError):
        return _answer(endpoint, True, f"HTTP {response.status_code}, but the listing is not the expected JSON")
    found = f"HTTP {response.status_code}, {len(names - {None})} models"
    if endpoint.model:
        found += f", {endpoint.model} {'listed' if endpoint.model in names else 'NOT listed'}"
    return _answer(endpoint, True, found)


def _answer(endpoint: Endpoint, reachable: bool, detail: str) -> Endpoint:
    return Endpoint(endpoint.spec, endpoint.url, endpoint.model, reachable, detail)


# --- the report -----------------------------------------------------------------------------------------


def _row(est: hardware.Estimate, machine: hardware.Machine) -> dict[str, Any]:
    result = hardware.assess(est, machine)
    return {
        "variant": est.name,
        "dtype": est.dtype,
        "weights_bytes": est.weights.total,
        "resident_bytes": est.weights.resident,
        "offloadable_bytes": est.weights.offloadable,
        "kv_bytes": est.kv.total,
        "total_bytes": est.total_bytes,
        "verdict": result.verdict,
        "where": result.where,
        "reason": result.reason,
        "steps": list(est.steps),
        "fit_steps": list(result.steps),
    }


def _fact(fact: Fact) -> dict[str, Any]:
    value = list(fact.value) if isinstance(fact.value, tuple) else fact.value
    return {"name": fact.name, "value": value, "source": fact.source, "where": fact.where}


def _report(
    found: Probe, endpoints: list[Endpoint], rows: list[dict[str, Any]], advice: hardware.Recommendation, context: int
) -> dict[str, Any]:
    machine = found.machine
    variants = [
        {
            "variant": arch.name,
            "hf_id": arch.hf_id,
            "ollama_tag": arch.ollama_tag,
            "modalities": list(arch.modalities),
            "context_tokens": arch.context_tokens,
            "facts": [_fact(f) for f in arch.facts],
            "param_checks": hardware.param_checks(arch),
            "estimates": [row for row in rows if row["variant"] == arch.name],
        }
        for arch in VARIANTS.values()
    ]
    chosen = None if advice.variant is None else advice.variant.name
    return {
        "machine": {
            "cpu_cores": machine.cpu_cores,
            "ram_total_bytes": machine.ram_total_bytes,
            "ram_available_bytes": machine.ram_available_bytes,
            "gpu_source": found.gpu_source,
            "gpus": [{"index": i, **asdict(g)} for i, g in enumerate(machine.gpus)],
            "disks": [
                {"label": d.label, "path": str(d.path), "free_bytes": d.free_bytes, "detail": d.detail}
                for d in found.disks
            ],
            "notes": list(found.notes),
        },
        "endpoints": [asdict(e) for e in endpoints],
        "context_tokens": context,
        "headroom": {
            "gpu_reserve_bytes": hardware.GPU_RESERVE_BYTES,
            "gpu_reserve_fraction": hardware.GPU_RESERVE_FRACTION,
            "ram_reserve_bytes": hardware.RAM_RESERVE_BYTES,
            "ram_reserve_fraction": hardware.RAM_RESERVE_FRACTION,
        },
        "variants": variants,
        "recommendation": {
            "task": advice.task,
            "variant": chosen,
            "dtype": advice.dtype,
            "verdict": None if advice.fit is None else advice.fit.verdict,
            "where": None if advice.fit is None else advice.fit.where,
            "reasons": list(advice.reasons),
            "steps": [] if advice.estimate is None else list(advice.estimate.steps),
            "fit_steps": [] if advice.fit is None else list(advice.fit.steps),
            "published": [_fact(f) for f in advice.published],
            "guessed": [_fact(f) for f in advice.guessed],
        },
    }


def _text(report: dict[str, Any], explain: bool) -> str:
    m = report["machine"]
    available = f", {format_bytes(m['ram_available_bytes'])} available" if m["ram_available_bytes"] else ""
    lines = [
        "Machine",
        f"  CPU   {m['cpu_cores']} cores",
        f"  RAM   {format_bytes(m['ram_total_bytes'])} total{available}",
    ]
    for gpu in m["gpus"]:
        free = f" ({format_bytes(gpu['free_bytes'])} free)" if gpu["free_bytes"] is not None else ""
        lines.append(
            f"  GPU {gpu['index']} {gpu['name']}, {format_bytes(gpu['total_bytes'])}{free} [{m['gpu_source']}]"
        )
    if not m["gpus"]:
        lines.append("  GPU   none")
    for disk in m["disks"]:
        lines.append(
            f"  disk  {disk['label']} {disk['path']}: {format_bytes(disk['free_bytes'])} free"
            + (f" ({disk['detail']})" if disk["detail"] else "")
        )
    lines += [f"  note  {note}" for note in m["notes"]]
    lines += (
        ["", "Servers"]
        + [
            f"  {e['spec']}\n    GET {e['url']}: {'reachable' if e['reachable'] else 'not reachable'}: {e['detail']}"
            for e in report["endpoints"]
        ]
        + (["  (no ollama: or openai: variants)"] if not report["endpoints"] else [])
    )
    h = report["headroom"]
    lines += [
        "",
        f"Memory at {report['context_tokens']:,} tokens of context, batch 1 (weights + KV cache; headroom "
        f"kept: {h['gpu_reserve_fraction']:.0%} of each GPU + {format_bytes(h['gpu_reserve_bytes'])}, "
        f"{h['ram_reserve_fraction']:.0%} of RAM + {format_bytes(h['ram_reserve_bytes'])})",
        f"  {'variant':<9}{'dtype':<6}{'weights':>11}{'KV':>11}{'total':>11}  fit",
    ]
    for variant in report["variants"]:
        for row in variant["estimates"]:
            lines.append(
                f"  {row['variant']:<9}{row['dtype']:<6}{format_bytes(row['weights_bytes']):>11}"
                f"{format_bytes(row['kv_bytes']):>11}{format_bytes(row['total_bytes']):>11}  "
                f"{row['verdict']}" + (f" ({row['where']})" if row["where"] else "")
            )
            if explain:
                lines += [f"      {step}" for step in row["steps"] + row["fit_steps"]]
    lines.append("  Architecture facts [published] / [guessed]:")
    for variant in report["variants"]:
        counts = {s: sum(f["source"] == s for f in variant["facts"]) for s in ("published", "guessed")}
        lines.append(
            f"    {variant['variant']}: {counts['published']} published, {counts['guessed']} guessed; "
            + "; ".join(variant["param_checks"])
        )
        if explain:
            lines += [f"  {line}" for line in _grouped(variant["facts"])]
    rec = report["recommendation"]
    title = f"{rec['variant']} {rec['dtype']}: {rec['verdict']}" if rec["variant"] else "nothing fits"
    lines += ["", f"Recommended for {rec['task']}: {title}"] + [f"  - {reason}" for reason in rec["reasons"]]
    if rec["variant"]:
        lines += ["  arithmetic:"] + [f"    {step}" for step in rec["steps"] + rec["fit_steps"]]
        lines += ["  facts it rests on:", *_grouped(rec["published"] + rec["guessed"])]
    return "\n".join(lines)


def _grouped(facts: list[dict[str, Any]]) -> list[str]:
    """One line per source: `[guessed] a = 1, b = 2 (where)`."""
    groups: dict[tuple[str, str], list[str]] = {}
    for f in facts:
        groups.setdefault((f["source"], f["where"]), []).append(f"{f['name']} = {_value(f['value'])}")
    return [f"    [{source}] {', '.join(names)} ({where})" for (source, where), names in groups.items()]


def _value(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        full = sum(v == "full_attention" for v in value)
        return f"{len(value)} layers: {len(value) - full} sliding + {full} full"
    return str(value)
