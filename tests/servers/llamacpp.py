"""Start and stop a real llama.cpp server (llama-cpp-python's `python -m llama_cpp.server`).

Used by the tests of the OpenAI-compatible backend: they talk to real server software, serving
the tiny GGUF model from `tiny_gguf`. A missing llama-cpp-python is a failure, not a skip: CI
must install it (`pip install 'llama-cpp-python[server]'`).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

INSTALL_HINT = (
    "the OpenAI-compatible backend is tested against a real llama.cpp server: install it with "
    "`pip install 'llama-cpp-python[server]'` (and `pip install gguf` for the tiny test model)"
)


def missing_requirements() -> str | None:
    """Why a llama.cpp server cannot be started here, or None."""
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "gguf"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed; {INSTALL_HINT}"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaCppServer:
    """One `llama_cpp.server` process serving `model_path` as `alias` on a free loopback port."""

    model_path: Path
    alias: str = "tiny"
    n_ctx: int = 512
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 60.0) -> LlamaCppServer:
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
            "--model_alias", self.alias, "--n_ctx", str(self.n_ctx), "--host", "127.0.0.1",
            "--port", str(self.port), "--n_threads", "1",
        ]
        log = open(self.log_path or os.devnull, "wb")  # noqa: SIM115 - the child owns it until stop()
        # Unbuffered, so the log shows what the server printed (e.g. a client disconnecting) at once.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.process.returncode}: {self._log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not answer within {timeout_s:g} s: {self._log_tail()}")

    def kill(self) -> None:
        """End the server at once, as a crash would (SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        """What the server printed so far (empty without a log_path)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def disconnects_seen(self) -> int:
        """How many times the server noticed a client go away mid-stream (llama-cpp-python
        prints this when it stops generating for a closed connection)."""
        return self.log_text().count("Disconnected from client (via refresh/close)")

    def _log_tail(self) -> str:
        return self.log_text()[-2000:] or "(no log)"
