"""Options of an `hf:` variant, validated at the boundary (spec string or config file).

Plain data: no torch here, so the parent process can validate options without importing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from arena.errors import SpecError

DTYPES = ("auto", "bfloat16", "float16", "float32")
QUANTIZATIONS = ("4bit", "8bit")
_KNOWN = {
    "dtype", "device", "device_map", "quantize", "max_memory", "threads", "in_process",
    "revision", "attn_implementation", "label", "zero_gpu", "gpu_duration",
}


@dataclass(frozen=True)
class HFOptions:
    """How to load one transformers variant.

    - `dtype`: auto (the checkpoint's own), bfloat16, float16 or float32.
    - `device`: cpu, cuda, cuda:N, mps; empty means cuda when available, else cpu.
    - `device_map`: passed to `from_pretrained` (e.g. `auto` to spread a big model over GPUs and
      CPU); overrides `device`.
    - `quantize`: 4bit (NF4, bf16 compute) or 8bit through bitsandbytes.
    - `max_memory`: per-device caps for `device_map`, e.g. `0=20GiB,cpu=64GiB`.
    - `threads`: torch CPU threads in the worker (default: the cores split among local variants).
    - `in_process`: run in the app's own process instead of a worker (ZeroGPU Spaces need this).
    - `zero_gpu`: generate under ZeroGPU's `@spaces.GPU` (implies `in_process`); `serve` sets it
      on a ZeroGPU Space. Outside ZeroGPU the decorator does nothing and the model runs here.
    - `gpu_duration`: the seconds of GPU one answer may take on ZeroGPU (default: the `spaces`
      package's, 60); a longer one waits longer in ZeroGPU's queue.
    """

    model_path: str
    dtype: str = "auto"
    device: str = ""
    device_map: str | None = None
    quantize: str | None = None
    max_memory: Mapping[str, str] = field(default_factory=dict)
    threads: int | None = None
    in_process: bool = False
    revision: str | None = None
    attn_implementation: str | None = None
    zero_gpu: bool = False
    gpu_duration: int | None = None
    #: For the built-in demo variants: the name whose weights to build on first use.
    demo: str | None = None

    @classmethod
    def from_spec_options(cls, model_path: str, options: Mapping[str, str], **extra: object) -> HFOptions:
        unknown = set(options) - _KNOWN
        if unknown:
            raise SpecError(
                f"unknown option(s) {', '.join(sorted(unknown))} for {model_path}; "
                f"known: {', '.join(sorted(_KNOWN))}"
            )
        dtype = options.get("dtype", "auto")
        if dtype not in DTYPES:
            raise SpecError(f"dtype={dtype!r} is not one of {', '.join(DTYPES)}")
        quantize = options.get("quantize") or None
        if quantize is not None and quantize not in QUANTIZATIONS:
            raise SpecError(f"quantize={quantize!r} is not one of {', '.join(QUANTIZATIONS)}")
        threads = options.get("threads")
        if threads is not None and (not threads.isdigit() or int(threads) < 1):
            raise SpecError(f"threads={threads!r} must be a positive whole number")
        duration = options.get("gpu_duration")
        if duration is not None and (not duration.isdigit() or int(duration) < 1):
            raise SpecError(f"gpu_duration={duration!r} must be a positive whole number of seconds")
        zero_gpu = _parse_bool("zero_gpu", options.get("zero_gpu", "false"))
        return cls(
            model_path=model_path,
            dtype=dtype,
            device=options.get("device", ""),
            device_map=options.get("device_map") or None,
            quantize=quantize,
            max_memory=_parse_max_memory(options.get("max_memory", "")),
            threads=int(threads) if threads else None,
            # ZeroGPU reaches the GPU from the app's own process only
            in_process=zero_gpu or _parse_bool("in_process", options.get("in_process", "false")),
            revision=options.get("revision") or None,
            attn_implementation=options.get("attn_implementation") or None,
            zero_gpu=zero_gpu,
            gpu_duration=int(duration) if duration else None,
            **extra,  # type: ignore[arg-type]
        )


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SpecError(f"{name}={text!r} must be true or false")


def _parse_max_memory(text: str) -> dict[str, str]:
    caps: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        device, sep, amount = part.partition("=")
        if not sep or not amount:
            raise SpecError(f"max_memory part {part!r} must look like 0=20GiB or cpu=64GiB")
        caps[device.strip()] = amount.strip()
    return caps
