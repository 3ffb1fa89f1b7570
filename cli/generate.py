"""`python app.py generate`: every variant answers every prompt of a set, stored for judging.

The set file (JSONL or CSV, see `arena.prompt_sets`) is stored once as a set (`--set`, default
the file's name); running again adds prompts new to the file and refuses changed ones. The
variants work in parallel, each walking the prompts in its own task, with a progress bar per
variant and one overall. Every answer is committed on its own as it finishes, so a Ctrl-C or a
kill loses only the answers being generated, and running the command again generates only what
is missing (failed attempts are tried again). Stats are measured and stored as for `compare`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.errors import UnsupportedInput, UsageError
from arena.lineup import Lineup, Variant, create_lineup, load_all
from arena.measure import Result, check_supported, measure
from arena.prompt_sets import GenerationOptions, answer_seed, describe_bad, read_prompt_set, seeded
from arena.settings import Settings
from backends.base import Request
from backends.demo import RANDOM_WEIGHTS_NOTE
from backends.registry import default_registry
from cli import EXIT_OK, EXIT_PARTIAL, add_db_argument
from cli.compare import DEFAULT_VARIANTS
from cli.limits import add_limit_arguments, limits_from
from storage import Store, open_store
from storage.sets import add_prompts, answered, check_name, read_requests, record_answer, refused, set_info


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="have every variant answer every prompt of a prompt set, stored for blind judging",
        description="Read a prompt set (JSONL: one object a line; CSV: a header, then rows; fields text, id, "
        "images, audio, tags, category, system), store it, and have every variant answer every prompt, the "
        "variants in parallel, with Gemma 4's recommended sampling and a seed per answer. Each answer is "
        "committed as it finishes: run the command again to resume after a Ctrl-C or a crash. Judge the "
        "answers in the Judge tab; rate them with `leaderboard --set NAME`.",
    )
    p.add_argument("--prompts", type=Path, metavar="FILE",
                   help="the prompt set (FILE.jsonl or FILE.csv; media paths relative to it). Without it, "
                        "--set names a stored set (e.g. imported) to answer with more variants")
    p.add_argument("--set", dest="set_name", metavar="NAME", help="the set's name (default: the file's name)")
    p.add_argument("--variants", nargs="+", metavar="SPEC", default=DEFAULT_VARIANTS,
                   help="variant specs (default: the four demo variants)")
    p.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="answers per prompt and variant, each with a seed of its own (default 1)")
    p.add_argument("--seed", type=int, metavar="S",
                   help="derive every answer's seed from S, the prompt and the repeat (default: a secret seed each)")
    p.add_argument("--max-new-tokens", type=int, default=256, metavar="N",
                   help="tokens per answer at most (default 256)")
    p.add_argument("--system", help="system prompt for every prompt without one of its own")
    p.add_argument("--thinking", action="store_true", help="turn on the thinking switch of the chat template")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="stop a variant that produces nothing for this many seconds (default 120)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out bad rows (listed on stderr) instead of refusing the file")
    add_db_argument(p)
    add_limit_arguments(p, serving=False)
    p.set_defaults(handler=run)


@dataclass(frozen=True)
class Task:
    """One answer to generate."""

    prompt_id: str
    repeat: int
    request: Request


@dataclass
class Tally:
    """How one variant's work went."""

    answered: int = 0
    failed: int = 0
    unsupported: int = 0
    not_loaded: int = 0
    already: int = 0
    last_error: str = ""


#: Told (variant, tasks done, tasks) as each variant advances; (name, None, message) while loading.
Progress = Callable[[str, int, int], None]


def run(args: argparse.Namespace, settings: Settings) -> int:
    limits = limits_from(args, None)
    if args.repeats < 1:
        raise UsageError(f"--repeats must be 1 or more, not {args.repeats}")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise UsageError("--seed must be a whole number from 0")
    if args.prompts is None and args.set_name is None:
        raise UsageError("give the prompts (--prompts FILE) or a stored set's name (--set NAME)")
    name = check_name(args.set_name or args.prompts.stem)
    options = GenerationOptions(args.max_new_tokens, args.system, args.thinking)
    registry = default_registry()
    specs = [registry.parse(text) for text in args.variants]
    labels = [spec.label for spec in specs]
    prompts = None
    if args.prompts is not None:  # read and checked before the database is touched
        parsed = read_prompt_set(args.prompts, options, limits)
        prompts = parsed.usable(skip_bad=args.skip_bad)
        if parsed.bad:
            print(f"skipped {len(parsed.bad)} bad rows: {describe_bad(parsed.bad)}", file=sys.stderr)
    with open_store(settings.db_path) as store:
        if prompts is not None:
            added = add_prompts(store, name, str(args.prompts), prompts)
            print(f"set {name}: {added.added} prompts stored, {added.already_stored} were stored already",
                  file=sys.stderr)
        else:
            set_info(store, name)
        work, tallies = plan(store, name, labels, args.repeats)
        todo = sum(len(tasks) for tasks in work.values())
        if todo:
            lineup = create_lineup(specs, registry, settings)
            if any(spec.prefix == "demo" for spec in specs):
                print(f"(demo variants: {RANDOM_WEIGHTS_NOTE})", file=sys.stderr)
            with _Bars(work) as bars:
                asyncio.run(generate(lineup, store, name, work, tallies, seed=args.seed, timeout_s=args.timeout,
                                     progress=bars.update, loading=bars.loading))
    print(summary(name, tallies, settings.db_path))
    return EXIT_OK if all(t.failed + t.not_loaded == 0 for t in tallies.values()) else EXIT_PARTIAL


def plan(
    store: Store, name: str, variants: Sequence[str], repeats: int
) -> tuple[dict[str, list[Task]], dict[str, Tally]]:
    """What each variant still has to answer in set `name` (repeat by repeat, prompts in file
    order), leaving out what is stored; and a tally per variant counting what already was."""
    prompts = read_requests(store, name)
    done, cannot = answered(store, name), refused(store, name)
    work: dict[str, list[Task]] = {}
    tallies: dict[str, Tally] = {}
    for variant in variants:
        tasks = [Task(prompt.id, repeat, request) for repeat in range(repeats) for prompt, request in prompts]
        keys = [(task.prompt_id, variant, task.repeat) for task in tasks]
        work[variant] = [task for task, key in zip(tasks, keys, strict=True) if key not in done and key not in cannot]
        tallies[variant] = Tally(already=sum(key in done for key in keys),
                                 unsupported=sum(key in cannot for key in keys))
    return work, tallies


async def generate(
    lineup: Lineup, store: Store, name: str, work: dict[str, list[Task]], tallies: dict[str, Tally], *,
    seed: int | None = None, timeout_s: float | None = 120.0, progress: Progress | None = None,
    loading: Callable[[str, float | None, str], None] | None = None,
) -> dict[str, Tally]:
    """Load the variants, then have each answer its tasks in a task of its own (the variants in
    parallel, each one prompt at a time), committing every answer as it finishes. A variant that
    cannot take a prompt's media is not asked (nothing stored); one that failed to load is
    counted and the others go on."""
    try:
        if loading is not None:
            await load_all(lineup, loading)
        else:
            await load_all(lineup)
        await asyncio.gather(*(
            _answer_all(variant, store, name, work.get(variant.name, []), tallies[variant.name], seed, timeout_s,
                        progress)
            for variant in lineup.variants
        ))
    finally:
        await lineup.close()
    return tallies


async def _answer_all(
    variant: Variant, store: Store, name: str, tasks: list[Task], tally: Tally, seed: int | None,
    timeout_s: float | None, progress: Progress | None,
) -> None:
    for done, task in enumerate(tasks, 1):
        backend = variant.backend
        if backend is None or not variant.available:
            tally.not_loaded += len(tasks) - done + 1
            tally.last_error = variant.error or f"{variant.name} is not loaded"
            break
        try:
            check_supported(backend, task.request)
        except UnsupportedInput as exc:  # recorded, so it is not asked again
            refusal = Result(variant.name, error=str(exc), error_kind=type(exc).__name__)
            await asyncio.to_thread(record_answer, store, name, task.prompt_id, variant.name, str(variant.spec),
                                    task.repeat, None, refusal)
            tally.unsupported += 1
        else:
            seed_of_answer = answer_seed(seed, task.prompt_id, task.repeat)
            result = await measure(backend, seeded(task.request, seed_of_answer), load_s=variant.load_s,
                                   weights_bytes=variant.weights_bytes, timeout_s=timeout_s, name=variant.name)
            await asyncio.to_thread(record_answer, store, name, task.prompt_id, variant.name, str(variant.spec),
                                    task.repeat, seed_of_answer, result)
            if result.ok:
                tally.answered += 1
            else:
                tally.failed += 1
                tally.last_error = result.error or ""
        if progress is not None:
            progress(variant.name, done, len(tasks))


def summary(name: str, tallies: dict[str, Tally], db_path: Path) -> str:
    """One line per variant: answered now, stored before, failed, not asked, and why."""
    lines = [f"set {name} in {db_path}:"]
    for variant, t in tallies.items():
        parts = [f"{t.answered} answered", f"{t.already} stored before"]
        if t.failed:
            parts.append(f"{t.failed} failed (run again to retry)")
        if t.unsupported:
            parts.append(f"{t.unsupported} not asked (it cannot take their media)")
        if t.not_loaded:
            parts.append(f"{t.not_loaded} not asked (not loaded)")
        why = f": {t.last_error}" if t.last_error and (t.failed or t.not_loaded) else ""
        lines.append(f"  {variant}: {', '.join(parts)}{why}")
    return "\n".join(lines)


class _Bars:
    """A rich progress bar per variant and one overall, on stderr."""

    def __init__(self, work: dict[str, list[Task]]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                  console=Console(stderr=True))
        self._done = {variant: 0 for variant in work}
        self._tasks = {variant: self._progress.add_task(variant, total=len(tasks), note="loading")
                       for variant, tasks in work.items()}
        self._overall = self._progress.add_task("all variants", total=sum(map(len, work.values())), note="")

    def __enter__(self) -> _Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def loading(self, variant: str, fraction: float | None, message: str) -> None:
        if variant in self._tasks:
            self._progress.update(self._tasks[variant], note=message[:60])

    def update(self, variant: str, done: int, total: int) -> None:
        self._progress.update(self._tasks[variant], completed=done, note="")
        self._done[variant] = done
        self._progress.update(self._overall, completed=sum(self._done.values()))
