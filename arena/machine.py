"""What this machine has: CPU cores, RAM, GPUs and free disk, as an `arena.hardware.Machine`.

The one place that asks the system (psutil, torch.cuda, NVML when installed, the file system), so
`arena.hardware` stays pure. NVML (the `nvidia-ml-py` package, imported as `pynvml`) is used only
where it is installed: it adds each GPU's free memory; without it torch.cuda gives names and totals.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.hardware import Gpu, Machine


@dataclass(frozen=True)
class Disk:
    label: str
    path: Path
    free_bytes: int | None
    #: the folder whose file system was measured (the nearest existing one), or why none could be
    detail: str = ""


@dataclass(frozen=True)
class Probe:
    machine: Machine
    disks: tuple[Disk, ...]
    #: where the GPU figures came from: "NVML", "torch.cuda" or "none"
    gpu_source: str
    notes: tuple[str, ...] = ()


def probe(folders: Mapping[str, Path] | None = None) -> Probe:
    """This machine now; `folders` (label -> path) are measured for free disk space."""
    import psutil

    memory = psutil.virtual_memory()
    gpus, source, notes = probe_gpus()
    machine = Machine(
        cpu_cores=os.cpu_count() or 1,
        ram_total_bytes=int(memory.total),
        ram_available_bytes=int(memory.available),
        gpus=gpus,
    )
    disks = tuple(free_disk(label, Path(path)) for label, path in (folders or {}).items())
    return Probe(machine, disks, source, tuple(notes))


def probe_gpus() -> tuple[tuple[Gpu, ...], str, list[str]]:
    """(GPUs, where their figures came from, notes): NVML when installed, else torch.cuda."""
    notes: list[str] = []
    try:
        return _nvml_gpus(), "NVML", notes
    except ImportError:
        notes.append("NVML not installed (pip install nvidia-ml-py adds each GPU's free memory)")
    except Exception as exc:  # the library is there but no driver answers: fall back to torch
        notes.append(f"NVML did not answer: {exc}")
    try:
        import torch
    except ImportError:
        notes.append("torch is not installed: GPUs unknown")
        return (), "none", notes
    if not torch.cuda.is_available():
        notes.append("torch sees no CUDA GPU")
        return (), "none", notes
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(Gpu(name=str(props.name), total_bytes=int(props.total_memory)))
    return tuple(gpus), "torch.cuda", notes


def _nvml_gpus() -> tuple[Gpu, ...]:
    import pynvml

    nvml: Any = pynvml
    nvml.nvmlInit()
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                Gpu(
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    total_bytes=int(memory.total),
                    free_bytes=int(memory.free),
                )
            )
        return tuple(gpus)
    finally:
        nvml.nvmlShutdown()


def free_disk(label: str, path: Path) -> Disk:
    """Free space on the file system that holds `path`, measured at its nearest existing folder
    (the data and cache folders are only created when first needed)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        usage = shutil.disk_usage(existing)
    except OSError as exc:
        return Disk(label, path, None, f"cannot measure: {exc.strerror or exc}")
    detail = "" if existing == path else f"measured at {existing} (not created yet)"
    return Disk(label, path, int(usage.free), detail)
