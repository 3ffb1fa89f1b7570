"""`python app.py doctor`: the machine, the variant file's servers, the memory table and the
recommendation, in text and JSON."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from arena.settings import Settings
from cli import build_parser, main
from tests.servers.fake_ollama import FakeOllama
from tests.servers.fake_openai import FakeOpenAI


def doctor(capsys: pytest.CaptureFixture[str], settings: Settings, *args: str) -> tuple[int, str, str]:
    code = main(["doctor", *args], settings=settings)
    out, err = capsys.readouterr()
    return code, out, err


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def variant_file(tmp_path: Path, *specs: str) -> Path:
    path = tmp_path / "variants.toml"
    path.write_text("".join(f'[[variants]]\nspec = "{spec}"\n\n' for spec in specs))
    return path


def test_json_report_has_machine_servers_estimates_and_recommendation(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    dead = f"openai:http://127.0.0.1:{closed_port()}/v1#google/gemma-4-31B-it"
    with FakeOpenAI() as server:
        alive = f"openai:{server.base_url}#google/gemma-4-31B-it"
        config = variant_file(tmp_path, "demo:e2b", dead, alive, f"ollama:gemma4:e4b?host={fake_ollama.url}")
        code, out, _ = doctor(
            capsys, settings, "--json", "--config", str(config), "--context", "4096", "--task", "audio"
        )
    assert code == 0
    report = json.loads(out)
    assert set(report) >= {"machine", "endpoints", "context_tokens", "headroom", "variants", "recommendation"}
    assert report["machine"]["cpu_cores"] >= 1 and report["machine"]["ram_total_bytes"] > 0
    assert {d["label"] for d in report["machine"]["disks"]} == {"data", "cache"}
    servers = {e["spec"]: e for e in report["endpoints"]}
    assert len(servers) == 3  # demo: has no server
    assert servers[dead]["reachable"] is False and "cannot connect" in servers[dead]["detail"]
    assert servers[alive]["reachable"] is True and "google/gemma-4-31B-it listed" in servers[alive]["detail"]
    ollama = next(e for e in report["endpoints"] if e["spec"].startswith("ollama:"))
    assert ollama["reachable"] and ollama["url"].endswith("/api/tags") and "gemma4:e4b listed" in ollama["detail"]
    assert [v["variant"] for v in report["variants"]] == ["E2B", "E4B", "26B A4B", "31B"]
    row = report["variants"][0]["estimates"][0]
    assert set(row) >= {"dtype", "weights_bytes", "kv_bytes", "total_bytes", "verdict", "steps", "fit_steps"}
    assert row["verdict"] in ("fits", "fits with offload", "does not fit") and row["steps"]
    assert report["context_tokens"] == 4096
    sources = {f["source"] for v in report["variants"] for f in v["facts"]}
    assert sources == {"published", "guessed"}
    rec = report["recommendation"]
    assert rec["task"] == "audio"
    if rec["variant"] is not None:  # what fits depends on the machine running the test
        assert rec["variant"] in ("E2B", "E4B") and rec["steps"] and rec["published"] and rec["guessed"]


def test_text_report_marks_published_and_guessed_numbers(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    dead = f"openai:http://127.0.0.1:{closed_port()}/v1#m"
    code, out, _ = doctor(capsys, settings, "--config", str(variant_file(tmp_path, dead)), "--explain")
    assert code == 0
    assert f"{dead}\n" in out and "not reachable: cannot connect" in out
    assert "Memory at 8,192 tokens of context" in out and "26B A4B" in out
    assert "[published]" in out and "[guessed]" in out
    assert "KV-shared layers store none" in out  # --explain shows every estimate's arithmetic
    assert "Recommended for chat:" in out


def test_without_a_variant_file_the_default_ollama_server_is_checked(
    capsys: pytest.CaptureFixture[str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port()}")
    code, out, _ = doctor(capsys, settings, "--json")
    assert code == 0
    (endpoint,) = json.loads(out)["endpoints"]
    assert endpoint["reachable"] is False and endpoint["url"].endswith("/api/tags")


def test_bad_context_and_missing_file_are_usage_errors(
    capsys: pytest.CaptureFixture[str], settings: Settings, tmp_path: Path
) -> None:
    code, _, err = doctor(capsys, settings, "--context", "0")
    assert code == 2 and "--context" in err
    code, _, err = doctor(capsys, settings, "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "does not exist" in err


def test_doctor_and_its_options_are_documented() -> None:
    commands: Any = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    command = commands["doctor"]
    assert command.description
    for action in command._actions:
        assert action.help, f"doctor {action.option_strings} has no help"
