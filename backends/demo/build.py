"""Builds a demo variant's files (tokenizer, processor, config, random weights) on first use.

Deterministic: the same catalog entry and library versions give the same files. Runs where
torch is wanted anyway (the variant's worker), never at import time.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

from backends.base import ProgressFn, no_progress
from backends.demo.catalog import BUILD_VERSION, TEXT_COMMON, VARIANTS, DemoVariant
from backends.demo.template import BASIC_TOKENS, CHAT_TEMPLATE, MARKER_TOKENS, MEDIA_TOKENS

SEED = 20260427
VOCAB_SIZE = 1024
# No model family or maker among them ("Gemma", "Google", ...): an answer naming one flags its
# battle (arena/identity.py), and random tokens from this corpus would flag demo battles.
_WORDS = (
    "the a an of to in on for with at by from and or but not is are was were be been have has had "
    "do does did will would can could should may might must I you he she it we they me him her us "
    "them my your his its our their this that these those what which who whom whose when where why "
    "how all any both each few more most other some such no nor only own same so than too very just "
    "model variant memory speed answer question image audio sound picture voice token prompt reply "
    "think thought reason step first then next finally because therefore however example result "
    "small large fast slow good better best bad worse worst new old same different simple complex "
    "run walk read write see hear say tell ask give take make find know learn use work try call "
    "time day year way thing man woman child world life hand part place case week point number "
    "water food house car city country story book music game color light dark red blue green "
    "one two three four five six seven eight nine ten hundred thousand million zero "
    "garden arena compare vote rank edge dense expert mixture layer weight tensor device GPU CPU"
).split()


def model_dir(cache_dir: Path, name: str) -> Path:
    return Path(cache_dir) / "demo" / f"{name}-v{BUILD_VERSION}"


def ensure_built(cache_dir: Path, name: str, progress: ProgressFn = no_progress) -> Path:
    """Return the folder of demo variant `name`, building it first if needed.

    Safe when several processes ask at once: one builds under a lock, the others wait and reuse.
    """
    variant = VARIANTS[name]
    target = model_dir(cache_dir, name)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():
            return target
        staging = target.parent / f".{target.name}.building-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        _build(variant, staging, progress)
        os.replace(staging, target)
    return target


def _corpus(lines: int = 4000) -> list[str]:
    rng = random.Random(SEED)
    out = []
    for _ in range(lines):
        words = rng.choices(_WORDS, k=rng.randint(5, 16))
        out.append(" ".join(words).capitalize() + rng.choice([".", "?", "!", ","]))
    return out


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=BASIC_TOKENS + MARKER_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=MEDIA_TOKENS,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": MARKER_TOKENS})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _config(variant: DemoVariant, tokenizer: Any) -> Any:
    from transformers import Gemma4Config

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in BASIC_TOKENS + MARKER_TOKENS}
    vocab = len(tokenizer)
    text = {
        **TEXT_COMMON,
        **variant.text,
        "vocab_size": vocab,
        # Without this the per-layer-embedding table alone would be 262144 rows.
        "vocab_size_per_layer_input": vocab,
        "pad_token_id": ids["<pad>"],
        "bos_token_id": ids["<bos>"],
        "eos_token_id": [ids["<eos>"], ids["<turn|>"]],
    }
    return Gemma4Config(
        text_config=text,
        vision_config=variant.vision,
        audio_config=variant.audio,
        boi_token_id=ids["<|image>"],
        eoi_token_id=ids["<image|>"],
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        boa_token_id=ids["<|audio>"],
        eoa_token_index=ids["<audio|>"],
        audio_token_id=ids["<|audio|>"],
    )


def _build(variant: DemoVariant, folder: Path, progress: ProgressFn) -> None:
    import torch
    from transformers import (
        Gemma4AudioFeatureExtractor,
        Gemma4ForConditionalGeneration,
        Gemma4ImageProcessor,
        Gemma4Processor,
        Gemma4VideoProcessor,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "last layer forced to full attention" notice is expected
    hf_logging.disable_progress_bar()
    progress(0.15, f"building demo:{variant.name}: training its tokenizer")
    tokenizer = _tokenizer()
    progress(0.25, f"building demo:{variant.name}: random weights")
    config = _config(variant, tokenizer)
    torch.manual_seed(SEED)
    model = Gemma4ForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    processor = Gemma4Processor(
        feature_extractor=Gemma4AudioFeatureExtractor(),
        image_processor=Gemma4ImageProcessor(max_soft_tokens=variant.image_soft_tokens),
        tokenizer=tokenizer,
        video_processor=Gemma4VideoProcessor(),
        chat_template=CHAT_TEMPLATE,
        image_seq_length=variant.image_soft_tokens,
    )
    progress(0.35, f"building demo:{variant.name}: saving")
    folder.mkdir(parents=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "gemma_arena_demo.json").write_text(
        json.dumps(
            {
                "name": variant.name,
                "stands_for": variant.stands_for,
                "description": variant.description,
                "build_version": BUILD_VERSION,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
            indent=2,
        )
    )
