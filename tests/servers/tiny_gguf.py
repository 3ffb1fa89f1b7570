"""A tiny random-weight GGUF model that llama.cpp loads and serves, written without torch.

A "llama"-architecture model (2 layers, width 64) with a byte-level BPE vocabulary: the 256
GPT-2 byte tokens, a few hundred merges learnt from a sample text (llama.cpp refuses a BPE
vocabulary without merges), and BOS/EOS. Its chat template uses Gemma 4's turn markers. The output
is random text: it exercises the real server, streaming and token accounting, not answers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

_SAMPLE = (
    "The quick brown fox jumps over the lazy dog. Gemma Arena compares Gemma variants side by "
    "side: the same request goes to every variant, each streams back, and one wrapper measures "
    "them all the same way. Thinking, tools, images and audio are part of the request."
)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] }}<turn|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)


def _byte_symbols() -> list[str]:
    """GPT-2's byte-to-unicode table: every byte as one printable character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    table = dict(zip(printable, codes, strict=True))
    return [chr(table[byte]) for byte in range(256)]


def _learn_merges(symbols: list[str], count: int) -> list[tuple[str, str]]:
    """Plain BPE over the sample text, so every merge's parts and result are in the vocabulary."""
    encoded = "".join(symbols[b] for b in _SAMPLE.encode())
    words = [list(w) for w in encoded.replace(symbols[32], " " + symbols[32]).split(" ") if w]
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        pairs = Counter((w[i], w[i + 1]) for w in words for i in range(len(w) - 1))
        if not pairs:
            break
        (left, right), _n = pairs.most_common(1)[0]
        merges.append((left, right))
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == left and w[i + 1] == right:
                    w[i : i + 2] = [left + right]
                i += 1
    return merges


def write_tiny_gguf(path: Path, *, width: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Write the model to `path` (about 1 MB) and return the path."""
    import gguf

    symbols = _byte_symbols()
    merges = _learn_merges(symbols, 120)
    tokens = symbols + [a + b for a, b in merges] + ["<s>", "</s>"]
    types = [gguf.TokenType.NORMAL] * (len(tokens) - 2) + [gguf.TokenType.CONTROL] * 2
    bos, eos = len(tokens) - 2, len(tokens) - 1
    heads, kv_heads, ffn = 4, 2, width * 2
    head_dim = width // heads

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("gemma-arena-tiny-test")
    writer.add_context_length(512)
    writer.add_embedding_length(width)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([f"{a} {b}" for a, b in merges])
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int, scale: float = 0.2) -> None:
        # numpy shape (rows, cols) is GGUF's (cols, rows): rows are output features
        data = np.ones(shape, np.float32) if scale == 0 else rng.normal(0, scale, shape).astype(np.float32)
        writer.add_tensor(name, data)

    vocab = len(tokens)
    tensor("token_embd.weight", vocab, width)
    tensor("output_norm.weight", width, scale=0)
    # BOS/EOS and the non-ASCII byte tokens get all-zero output rows (logit 0) while the others
    # are random, so greedy decoding runs to max_tokens instead of ending at once, and writes
    # only whole characters (a server streaming half a UTF-8 character holds it back or drops it,
    # which would make streamed and whole answers differ for reasons that are not the wire's).
    output = rng.normal(0, 1.0, (vocab, width)).astype(np.float32)
    output[[bos, eos, *range(0x80, 0x100)]] = 0.0
    writer.add_tensor("output.weight", output)
    for n in range(layers):
        tensor(f"blk.{n}.attn_norm.weight", width, scale=0)
        tensor(f"blk.{n}.attn_q.weight", width, width)
        tensor(f"blk.{n}.attn_k.weight", kv_heads * head_dim, width)
        tensor(f"blk.{n}.attn_v.weight", kv_heads * head_dim, width)
        tensor(f"blk.{n}.attn_output.weight", width, width)
        tensor(f"blk.{n}.ffn_norm.weight", width, scale=0)
        tensor(f"blk.{n}.ffn_gate.weight", ffn, width)
        tensor(f"blk.{n}.ffn_up.weight", ffn, width)
        tensor(f"blk.{n}.ffn_down.weight", width, ffn)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
