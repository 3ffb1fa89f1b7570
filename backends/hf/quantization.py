"""bitsandbytes quantization as loaded by the transformers backend, and its CPU limits.

What 4-bit does on a CPU: the weights are stored as NF4 (about a quarter of bf16), and each
layer computes in bf16. On most CPUs bitsandbytes dequantizes a layer's weights for each call,
so 4-bit saves memory and costs speed. On CPUs with AVX-512 BF16 it repacks each 4-bit layer for
a fused kernel at the layer's first call, and that kernel only takes layers whose output size
is a multiple of 32 and whose input size is a multiple of the quantization block (64): on any
other layer bitsandbytes 0.50 fails with an assertion from inside the library. Such layers are
sent down the portable path every other CPU takes (same weights, same results), so one model
loads the same way on every CPU. Whatever else bitsandbytes cannot run on a machine shows at
load time, in one test forward, as a LoadError that names the cause.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import torch

from arena.errors import LoadError

#: The tile of output features bitsandbytes' packed AVX-512 BF16 kernel works in.
PACKED_CPU_TILE = 32


def quantization_config(quantize: str) -> Any:
    """The BitsAndBytesConfig for `quantize` (4bit: NF4 with bf16 compute; 8bit: LLM.int8)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=quantize == "4bit",
        load_in_8bit=quantize == "8bit",
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def unpackable_on_cpu(out_features: int, in_features: int, blocksize: int) -> bool:
    """Whether bitsandbytes' packed CPU kernel cannot take a 4-bit layer of this shape."""
    return bool(out_features % PACKED_CPU_TILE or in_features % 2 or in_features % blocksize)


def route_unpackable_layers(model: Any) -> list[str]:
    """Send the 4-bit layers the packed CPU kernel cannot take down bitsandbytes' portable path;
    return their names. A no-op (empty list) where that kernel is not used."""
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return []
    routed = []
    for name, module in model.named_modules():
        if not isinstance(module, Linear4bit) or not getattr(module, "support_avx512bf16_for_cpu", False):
            continue
        state = getattr(module.weight, "quant_state", None)
        blocksize = getattr(state, "blocksize", 64)
        if unpackable_on_cpu(module.out_features, module.in_features, blocksize):
            module.support_avx512bf16_for_cpu = False
            routed.append(name)
    return routed


def check_quantized_model_runs(model: Any, quantize: str, device: str, token_id: int) -> None:
    """Run one token through the model, so that a quantized layer bitsandbytes cannot run on this
    device fails now, with its cause, rather than on every request."""
    try:
        with torch.inference_mode():
            model(input_ids=torch.tensor([[token_id]], device=model.device))
    except Exception as exc:
        import bitsandbytes

        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
        where = "inside bitsandbytes" if _raised_in_bitsandbytes(exc) else "in its first forward"
        raise LoadError(
            f"bitsandbytes {bitsandbytes.__version__} cannot run quantize={quantize} on this {device} "
            f"({type(exc).__name__} {where}: {first}): load without quantize, try "
            f"quantize={'8bit' if quantize == '4bit' else '4bit'}, or use a CUDA GPU"
        ) from exc


def _raised_in_bitsandbytes(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return any(f"{os.sep}bitsandbytes{os.sep}" in frame.filename for frame in frames)
