"""What one transformers variant's memory is made of: its weights, and what each request adds.

The worker process's lifetime peak RSS says little about a model (torch's runtime and the load
weigh hundreds of MiB whatever the model), so the engine reports three figures instead:

- weights: the bytes of the model's parameters and buffers by device, counted once after load
  (`numel * element_size`: bitsandbytes' 4-bit weights count as packed, two to a byte; their
  small quantization states are not counted);
- request peak: the peak above what was in use just before the request. On CUDA, torch's
  allocation peak on each GPU the model uses, less its allocation before, summed over those GPUs.
  On a CPU, the process's resident memory sampled every `RssProbe.interval_s` during generation,
  less the resident memory just before (after handing freed heap pages back to the system, so
  the request's own allocations show as growth rather than reuse of a previous request's pages);
- process total: the process's resident memory at that peak, or the CUDA memory torch reserved.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections import defaultdict
from itertools import chain
from typing import Any, Protocol

import torch


def weights_by_device(model: Any) -> dict[str, int]:
    """The bytes of `model`'s parameters and buffers, by device ('cpu', 'cuda:0', ...). Weights
    offloaded to disk (the meta device) take no memory and are left out."""
    sizes: dict[str, int] = defaultdict(int)
    for tensor in chain(model.parameters(), model.buffers()):
        if tensor.device.type != "meta":
            sizes[str(tensor.device)] += tensor.numel() * tensor.element_size()
    return dict(sorted(sizes.items()))


class RequestProbe(Protocol):
    """Measures one request: `start()` just before it, `stop()` after, then read the figures."""

    kind: str
    request_peak_bytes: int | None
    process_bytes: int | None

    def start(self) -> None: ...

    def stop(self) -> None: ...


def probe_for(devices: list[str]) -> RequestProbe:
    """The probe for a model whose weights lie on `devices`: CUDA if any is a GPU, else RSS."""
    gpus = [device for device in devices if device.startswith("cuda")]
    return CudaProbe(gpus) if gpus else RssProbe()


class CudaProbe:
    """torch's own accounting, per GPU the model uses (never the current device by default: a
    model on cuda:1 would otherwise be measured on cuda:0)."""

    kind = "cuda"

    def __init__(self, devices: list[str]) -> None:
        self.devices = [torch.device(device) for device in devices]
        self._before: dict[torch.device, int] = {}
        self.request_peak_bytes: int | None = None
        self.process_bytes: int | None = None

    def start(self) -> None:
        for device in self.devices:
            torch.cuda.reset_peak_memory_stats(device)
            self._before[device] = torch.cuda.memory_allocated(device)

    def stop(self) -> None:
        self.request_peak_bytes = sum(
            max(0, torch.cuda.max_memory_allocated(device) - self._before[device]) for device in self.devices
        )
        self.process_bytes = sum(torch.cuda.max_memory_reserved(device) for device in self.devices)


class RssProbe:
    """The process's resident memory, sampled by a thread every `interval_s` during the request
    (torch drops the GIL inside its kernels, so the sampler also runs during one long prefill)."""

    kind = "rss"
    interval_s = 0.005

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = 0
        self._peak = 0
        self.request_peak_bytes: int | None = None
        self.process_bytes: int | None = None

    def start(self) -> None:
        release_free_heap()
        self._baseline = self._peak = resident_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._peak = max(self._peak, resident_bytes())
        self.request_peak_bytes = self._peak - self._baseline
        self.process_bytes = self._peak

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, resident_bytes())


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident memory now (not its peak)."""
    try:
        with open("/proc/self/statm", "rb") as statm:  # Linux: cheaper than psutil, ~5 µs
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


def release_free_heap() -> None:
    """Hand freed heap pages back to the system (glibc's malloc_trim), so the resident memory
    before a request is what is in use. glibc keeps freed blocks, and raises its mmap threshold
    after each large free, so without this a request reusing the pages of an earlier, longer one
    showed no growth at all. Elsewhere (macOS, musl) nothing is done."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL("libc.so.6").malloc_trim
    return None
