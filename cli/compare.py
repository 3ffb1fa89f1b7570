"""`python app.py compare`: one request to several variants at once, answers and stats printed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from arena.conversation import Conversation
from arena.errors import UsageError
from arena.fanout import run_all
from arena.limits import DEFAULT_LIMITS, Limits, too_much
from arena.lineup import Lineup, create_lineup, load_all
from arena.measure import Result
from arena.requests import build_request, read_messages_file, read_text_file, read_tools_arg
from arena.settings import Settings
from arena.units import format_bytes, format_seconds
from backends.base import Request
from backends.demo import RANDOM_WEIGHTS_NOTE, VARIANTS
from backends.registry import default_registry
from cli import EXIT_OK, EXIT_PARTIAL, add_db_argument
from cli.limits import add_limit_arguments, limits_from
from storage import Store, open_store

DEFAULT_VARIANTS = [f"demo:{name}" for name in VARIANTS]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="send one prompt to several variants at once and print each answer with its stats",
        description="Send the same request to every variant concurrently; print each answer, its "
        "thinking trace and tool calls, and its time to first token, decode tokens/s, total time, "
        "token counts, peak memory and load time.",
    )
    p.add_argument("--variants", nargs="+", metavar="SPEC", default=DEFAULT_VARIANTS,
                   help="variant specs, e.g. demo:e2b hf:google/gemma-4-E4B-it (default: the four demo variants)")
    prompt = p.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the user message")
    prompt.add_argument("--prompt-file", metavar="FILE",
                        help="read the user message from FILE (UTF-8 text; - reads standard input)")
    prompt.add_argument("--messages", metavar="FILE", type=Path,
                        help="a conversation: FILE is a JSON list of user turns, each a string or "
                        '{"text": "...", "files": ["photo.png", "clip.wav"]} (files relative to FILE\'s folder); '
                        "every variant answers each turn in order, with its own earlier answers")
    p.add_argument("--image", type=Path, action="append", default=[], metavar="FILE",
                   help="attach an image (PNG, JPEG, WebP, GIF, BMP); repeat for several")
    p.add_argument("--audio", type=Path, action="append", default=[], metavar="FILE",
                   help="attach an audio clip (WAV, FLAC, OGG, MP3); only E2B/E4B take audio")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--max-new-tokens", type=int, default=128, metavar="N")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 (default) decodes greedily")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P")
    p.add_argument("--top-k", type=int, default=0, metavar="K",
                   help="sample among the K likeliest tokens (0: no cut-off)")
    p.add_argument("--seed", type=int, metavar="S")
    p.add_argument("--thinking", action="store_true", help="turn on the thinking switch of the chat template")
    p.add_argument("--tools", metavar="JSON_OR_FILE",
                   help="tools the model may call: a JSON list of OpenAI-style functions, or a file holding one")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="stop a variant that produces nothing for this many seconds (default 120)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    add_db_argument(p, help="record the comparison in this votes database (default: GEMMA_ARENA_DB, "
                            "else the data folder's arena.db)")
    p.add_argument("--voter", default="local", metavar="NAME",
                   help="who the comparison is recorded for, to vote on later in the web app's History tab "
                        "(default: local, as `serve --voter`)")
    p.add_argument("--no-record", action="store_true",
                   help="do not record the comparison (a single variant is never recorded: votes need two)")
    add_limit_arguments(p, serving=False)
    p.set_defaults(handler=run)


def build_request_from(args: argparse.Namespace, limits: Limits = DEFAULT_LIMITS) -> Request:
    """The Request the flags describe, every limit checked before a file is read or a variant loaded."""
    prompt_flag = "--prompt-file" if args.prompt is None else "--prompt"
    try:
        prompt = args.prompt if args.prompt is not None else read_prompt_file(args.prompt_file, limits)
    except UsageError as exc:
        raise UsageError(_flag_names(str(exc), prompt_flag)) from exc
    return _flags_request(args, limits, prompt, prompt_flag, images=args.image, audio=args.audio)


def _flags_request(args: argparse.Namespace, limits: Limits, prompt: str, prompt_flag: str = "--prompt",
                   **media: Any) -> Request:
    """build_request with the flags' settings (system prompt, sampling, thinking, tools), its
    messages naming the flag a wrong value came from."""
    try:
        return build_request(
            prompt,
            system=args.system,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            seed=args.seed,
            thinking=args.thinking,
            tools=read_tools_arg(args.tools, limits),
            limits=limits,
            **media,
        )
    except UsageError as exc:
        raise UsageError(_flag_names(str(exc), prompt_flag)) from exc


def read_prompt_file(name: str, limits: Limits = DEFAULT_LIMITS, stdin: TextIO | None = None) -> str:
    """The prompt in file `name` ('-': standard input), reading at most one character more than
    the limit: a 10 GB file is refused after 32,001 characters, not read whole."""
    limit = limits.max_prompt_chars
    shown = "- (standard input)" if name == "-" else name
    if name != "-":
        text = read_text_file(name, f"--prompt-file {name}", most=limit)
    else:
        try:
            text = (stdin or sys.stdin).read(limit + 1)
        except UnicodeDecodeError as exc:
            raise UsageError(f"--prompt-file {shown} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from exc
        except OSError as exc:
            raise UsageError(f"--prompt-file {shown} cannot be read: {exc.strerror or exc}") from exc
    if len(text) > limit:
        raise too_much(f"--prompt-file {shown}", f"more than {limit:,} characters", f"{limit:,}", "shorten it",
                       "max_prompt_chars")
    return text


def _flag_names(message: str, prompt_flag: str = "--prompt") -> str:
    """Name the command-line flag in the shared validation messages."""
    for words, flag in (("the prompt", prompt_flag), ("the system prompt", "--system"),
                        ("max new tokens", "--max-new-tokens"), ("the seed", "--seed"),
                        ("temperature", "--temperature"), ("top-p", "--top-p"), ("the tools JSON", "--tools"),
                        ("tools", "--tools")):
        if message.startswith(words):
            return flag + message[len(words):]
    return message


def build_turns_from(args: argparse.Namespace, limits: Limits = DEFAULT_LIMITS) -> list[Request]:
    """The turns of `--messages FILE`, each a Request with the flags' settings (sampling, system
    prompt, tools), every limit checked before a variant is loaded."""
    if args.image or args.audio:
        raise UsageError("--image and --audio attach files to --prompt; with --messages, list each turn's "
                         'files in the file: {"text": "...", "files": ["photo.png"]}')
    turns = read_messages_file(args.messages, limits)
    first = _flags_request(args, limits, turns[0].prompt)
    return [replace(first, prompt=turn.prompt, images=turn.images, audio=turn.audio) for turn in turns]


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.messages is not None:
        return run_conversation(args, settings)
    request = build_request_from(args, limits_from(args, None))
    registry = default_registry()
    specs = [registry.parse(text) for text in args.variants]
    lineup = create_lineup(specs, registry, settings)
    # A battle needs two variants; a bad --db fails here, before minutes of loading.
    store = None if args.no_record or len(specs) < 2 else open_store(settings.db_path)
    try:
        results = asyncio.run(_compare(lineup, request, args.timeout, quiet=args.json))
        battle_id = None
        if store is not None:
            battle_id = store.record_comparison(
                request, [(v.name, str(v.spec)) for v in lineup.variants], results, mode="named", voter=args.voter
            )
    finally:
        if store is not None:
            store.close()
    if args.json:
        document: dict[str, Any] = {
            "request": request.describe(), "battle_id": battle_id, "results": [r.to_json() for r in results]
        }
        if any(spec.prefix == "demo" for spec in specs):
            document["notes"] = [f"demo variants: {RANDOM_WEIGHTS_NOTE}"]
        print(json.dumps(document, indent=2))
    else:
        if any(spec.prefix == "demo" for spec in specs):
            print(f"(demo variants: {RANDOM_WEIGHTS_NOTE})\n")
        for result in results:
            print(render_text(result))
        if battle_id:
            print(f"recorded as battle {battle_id} in {settings.db_path}", file=sys.stderr)
    return EXIT_OK if all(r.ok for r in results) else EXIT_PARTIAL


async def _compare(lineup: Lineup, request: Request, timeout: float, quiet: bool) -> list[Result]:
    try:
        await load_all(lineup, _progress(quiet))
        return await run_all(lineup.variants, request, timeout_s=timeout)
    finally:
        await lineup.close()


def _progress(quiet: bool) -> Callable[[str, float | None, str], None]:
    def progress(name: str, fraction: float | None, message: str) -> None:
        if not quiet:
            pct = "" if fraction is None else f"{fraction:4.0%} "
            print(f"[{name}] {pct}{message}", file=sys.stderr, flush=True)

    return progress


def run_conversation(args: argparse.Namespace, settings: Settings) -> int:
    """`compare --messages FILE`: the turns in order, each variant with its own history; a variant
    that fails a turn is left out of the next ones. Each turn is recorded pointing at the last."""
    turns = build_turns_from(args, limits_from(args, None))
    registry = default_registry()
    specs = [registry.parse(text) for text in args.variants]
    lineup = create_lineup(specs, registry, settings)
    store = None if args.no_record or len(specs) < 2 else open_store(settings.db_path)
    demo = any(spec.prefix == "demo" for spec in specs)
    if demo and not args.json:
        print(f"(demo variants: {RANDOM_WEIGHTS_NOTE})\n", flush=True)
    try:
        conversation = asyncio.run(_converse(lineup, turns, store, args, settings))
    finally:
        if store is not None:
            store.close()
    if args.json:
        document: dict[str, Any] = {
            "turns": [
                {"request": turn.request.describe(), "battle_id": turn.battle_id, "variants": list(turn.results),
                 "results": [result.to_json() for result in turn.results.values()]}
                for turn in conversation.turns
            ],
            "left_out": conversation.left_out(),
        }
        if demo:
            document["notes"] = [f"demo variants: {RANDOM_WEIGHTS_NOTE}"]
        print(json.dumps(document, indent=2))
    complete = len(conversation.turns) == len(turns) and not conversation.left_out()
    return EXIT_OK if complete else EXIT_PARTIAL


async def _converse(
    lineup: Lineup, turns: Sequence[Request], store: Store | None, args: argparse.Namespace, settings: Settings
) -> Conversation:
    conversation = Conversation([v.name for v in lineup.variants])
    try:
        await load_all(lineup, _progress(args.json))
        for number, turn in enumerate(turns, 1):
            names = conversation.continuing()
            if not names:
                _say(f"no variant answered turn {number - 1}: turns {number} to {len(turns)} were not sent",
                     args.json)
                break
            variants = [v for v in lineup.variants if v.name in names]
            results = await run_all(variants, conversation.requests_for(turn), timeout_s=args.timeout)
            battle_id = None
            if store is not None and len(variants) >= 2:  # a battle needs two
                battle_id = store.record_comparison(
                    turn, [(v.name, str(v.spec)) for v in variants], results, mode="named",
                    voter=args.voter, parent_id=conversation.parent_id,
                )
            conversation.add_turn(turn, {r.variant: r for r in results}, battle_id)
            if not args.json:
                _print_turn(number, len(turns), conversation.turns[-1].request, results, battle_id, settings)
            failed = [r.variant for r in results if not r.ok]
            if failed and number < len(turns):
                _say(f"{', '.join(failed)} failed turn {number} and {'is' if len(failed) == 1 else 'are'} "
                     "left out of the turns after it", args.json)
        return conversation
    finally:
        await lineup.close()


def _print_turn(
    number: int, total: int, request: Request, results: Sequence[Result], battle_id: str | None, settings: Settings
) -> None:
    attached = len(request.images) + len(request.audio)
    print(f"##### turn {number} of {total}: {request.prompt.strip()}"
          + (f" (+{attached} file{'s' if attached > 1 else ''})" if attached else "") + "\n")
    for result in results:
        print(render_text(result), flush=True)
    if battle_id:
        print(f"turn {number} recorded as battle {battle_id} in {settings.db_path}", file=sys.stderr)


def _say(message: str, quiet: bool) -> None:
    """A note about the conversation: on standard output in text mode, on standard error beside
    the JSON document (which says the same in `left_out`)."""
    print(f"({message})\n", file=sys.stderr if quiet else sys.stdout, flush=True)


def render_text(result: Result) -> str:
    lines = [f"=== {result.variant} ==="]
    if result.thinking:
        lines += ["[thinking]", result.thinking.strip(), "[answer]"]
    if result.text:
        lines.append(result.text.strip())
    for call in result.tool_calls:
        lines.append(f"[tool call] {call.name}({json.dumps(dict(call.arguments))})")
    if result.error:
        lines.append(f"error: {result.error}")
    s = result.stats
    rate = "-" if s.tokens_per_s is None else f"{s.tokens_per_s:.1f} tok/s"
    lines.append(
        f"TTFT {format_seconds(s.ttft_s)} | decode {rate} | total {format_seconds(s.total_s)} | "
        f"tokens in {s.input_tokens if s.input_tokens is not None else '-'} / out {s.output_tokens} | "
        f"memory {format_bytes(s.own_memory_bytes)}: weights {format_bytes(s.weights_bytes)} + this request "
        f"{format_bytes(s.request_peak_bytes)} (process {format_bytes(s.peak_memory_bytes)}, "
        f"{s.memory_kind or 'n/a'}) | load {format_seconds(s.load_s)}"
        + (f" | waited in line {format_seconds(s.queue_wait_s)} (not in TTFT)" if s.queue_wait_s else "")
    )
    if s.server:  # the engine's own figures, beside ours, never mixed in
        lines.append("engine's own figures: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(s.server.items())))
    return "\n".join(lines) + "\n"
