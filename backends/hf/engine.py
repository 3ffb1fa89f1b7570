"""One transformers model and its processor, answering one request at a time.

Runs inside a variant's worker process (or, with `in_process=true`, in a thread of the app). It is
the only code that touches torch and transformers for in-process variants; real checkpoints and
the demo variants take exactly the same path.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers.generation import BaseStreamer, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from arena.errors import GenerationError, LoadError, UnsupportedInput
from backends.base import (
    Capabilities,
    LoadReport,
    MemoryReport,
    Modality,
    ProgressFn,
    Request,
    Usage,
    no_progress,
)
from backends.hf.gemma_output import GemmaOutputParser, Markers
from backends.hf.inputs import chat_messages, decode_audio, decode_image, media_in_order
from backends.hf.memory import probe_for, weights_by_device
from backends.hf.options import HFOptions
from backends.hf.quantization import check_quantized_model_runs, quantization_config, route_unpackable_layers

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}

# transformers builds a model under process-wide switches (the meta device, the default dtype),
# so two loads in threads of one process (in-process variants) break each other: the second
# found its weights still on the meta device. In a worker process this lock is never contended.
_LOADING = threading.Lock()


class Engine:
    def __init__(self, options: HFOptions, cache_dir: Path) -> None:
        self.options = options
        self.cache_dir = cache_dir
        self.model: Any = None
        self.processor: Any = None
        self.tokenizer: Any = None
        self.capabilities = Capabilities()
        self._device = "cpu"
        self._weights: dict[str, int] = {}
        self._last: MemoryReport | None = None

    # ----------------------------------------------------------------- loading
    def load(self, progress: ProgressFn = no_progress) -> LoadReport:
        started = time.perf_counter()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        from transformers import AutoConfig
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = self.options.model_path
        if self.options.demo:
            from backends.demo.build import ensure_built

            path = str(ensure_built(self.cache_dir, self.options.demo, progress))
        progress(0.4, "reading config")
        try:
            config = AutoConfig.from_pretrained(path, revision=self.options.revision)
        except Exception as exc:  # OSError for missing repos/folders, ValueError for bad configs
            raise LoadError(
                f"could not read a model config at {path!r}: {_first_line(exc)}. Give a local folder "
                "with config.json, or a Hugging Face id you can download (huggingface-cli login for "
                "gated models)"
            ) from exc
        progress(0.5, "loading processor")
        self._load_processor(path)
        progress(0.6, "loading weights")
        with _LOADING:
            self.model = self._load_model(path, config)
        self.model.eval()
        self._device = str(next(self.model.parameters()).device)
        notes = [f"{torch.get_num_threads()} CPU thread(s)"]
        if self.options.quantize:
            notes += self._check_quantized()
        self.capabilities = self._capabilities(config)
        self._weights = weights_by_device(self.model)
        return LoadReport(
            load_s=time.perf_counter() - started,
            capabilities=self.capabilities,
            weights_bytes=sum(self._weights.values()),
            device=self._device,
            dtype=str(next(self.model.parameters()).dtype).removeprefix("torch."),
            quantization=self.options.quantize,
            notes=tuple(notes),
        )

    def _check_quantized(self) -> list[str]:
        """Route the 4-bit layers bitsandbytes' packed CPU kernel cannot take, then run one token
        so that anything else bitsandbytes cannot run here fails the load with its cause."""
        assert self.options.quantize is not None
        routed = route_unpackable_layers(self.model) if self._device == "cpu" else []
        token_id = self.tokenizer.bos_token_id or 0
        check_quantized_model_runs(self.model, self.options.quantize, self._device, token_id)
        if not routed:
            return []
        return [f"{len(routed)} 4-bit layer(s) on bitsandbytes' portable CPU path (sizes its fast kernel cannot take)"]

    def _load_processor(self, path: str) -> None:
        from transformers import AutoProcessor, AutoTokenizer

        try:
            self.processor = AutoProcessor.from_pretrained(path, revision=self.options.revision)
        except Exception:
            self.processor = None  # a text-only checkpoint may ship a tokenizer alone
        tokenizer = getattr(self.processor, "tokenizer", None) or self.processor
        if tokenizer is None or not hasattr(tokenizer, "decode"):
            tokenizer = AutoTokenizer.from_pretrained(path, revision=self.options.revision)
            self.processor = None
        self.tokenizer = tokenizer

    def _load_model(self, path: str, config: Any) -> Any:
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

        multimodal = getattr(config, "vision_config", None) or getattr(config, "audio_config", None)
        cls = AutoModelForImageTextToText if multimodal else AutoModelForCausalLM
        kwargs: dict[str, Any] = {"revision": self.options.revision}
        kwargs["dtype"] = "auto" if self.options.dtype == "auto" else _DTYPES[self.options.dtype]
        if self.options.attn_implementation:
            kwargs["attn_implementation"] = self.options.attn_implementation
        device = self.options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.options.quantize:
            kwargs["quantization_config"] = quantization_config(self.options.quantize)
        if self.options.device_map:
            kwargs["device_map"] = self.options.device_map
        elif self.options.quantize:
            kwargs["device_map"] = {"": device}  # bitsandbytes places weights while loading
        if self.options.max_memory:
            kwargs["max_memory"] = {
                int(k) if k.isdigit() else k: v for k, v in self.options.max_memory.items()
            }
        try:
            model: Any = cls.from_pretrained(path, **kwargs)
            if "device_map" not in kwargs:
                model = model.to(device)
        except torch.OutOfMemoryError as exc:
            raise LoadError(
                f"out of memory loading {path}: try quantize=4bit, a smaller variant, or "
                "device_map=auto with max_memory to offload layers to the CPU"
            ) from exc
        except ImportError as exc:
            raise LoadError(f"{_first_line(exc)} (install gemma-arena[quantization])") from exc
        return model

    def _capabilities(self, config: Any) -> Capabilities:
        modalities: set[Modality] = {"text"}
        if getattr(config, "vision_config", None) and getattr(self.processor, "image_processor", None):
            modalities.add("image")
        if getattr(config, "audio_config", None) and getattr(self.processor, "feature_extractor", None):
            modalities.add("audio")
        template = getattr(self.processor, "chat_template", None) or self.tokenizer.chat_template or ""
        text_config = config.get_text_config()
        return Capabilities(
            modalities=frozenset(modalities),
            tools="tools" in template,
            thinking="enable_thinking" in template,
            context_length=getattr(text_config, "max_position_embeddings", None),
        )

    # -------------------------------------------------------------- generation
    def output_parser(self) -> GemmaOutputParser:
        """A fresh parser of this model's output, for one answer."""
        return GemmaOutputParser(
            decode=lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True),
            decode_raw=lambda ids: self.tokenizer.decode(ids, skip_special_tokens=False),
            markers=Markers.from_vocab(self._token_id),
            hidden_ids=special_token_ids(self.tokenizer),
        )

    def prepare(self, request: Request) -> tuple[Any, dict[str, Any]]:
        """The model inputs and `generate()` arguments for `request`, less the streamer and the
        cancel check that `generate` adds (the overhead benchmark runs plain generate with these)."""
        missing = request.modalities - self.capabilities.modalities
        if missing:
            raise UnsupportedInput(
                f"this model takes {', '.join(sorted(self.capabilities.modalities))}, "
                f"not {', '.join(sorted(missing))}"
            )
        inputs = self._inputs(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        limit = self.capabilities.context_length
        if limit and prompt_length + request.max_new_tokens > limit:
            raise GenerationError(
                f"the prompt ({prompt_length} tokens) plus max_new_tokens ({request.max_new_tokens}) "
                f"exceeds this model's context of {limit} tokens: shorten the prompt or ask for fewer tokens"
            )
        kwargs: dict[str, Any] = dict(max_new_tokens=request.max_new_tokens, do_sample=request.temperature > 0)
        if request.temperature > 0:
            # top_k=0 turns off the checkpoint's own cut-off (generation_config.json), so only the
            # request decides how tokens are sampled.
            kwargs.update(temperature=request.temperature, top_p=request.top_p, top_k=request.top_k or 0)
        if self.options.demo:
            from backends.demo.structure import DemoStructure, plan_forced_tokens

            plan = plan_forced_tokens(request, self.tokenizer)
            kwargs["logits_processor"] = LogitsProcessorList(
                [DemoStructure(prompt_length, plan, special_token_ids(self.tokenizer))]
            )
        return inputs, kwargs

    def generate(self, request: Request, sink: TokenSink, cancelled: threading.Event) -> Usage:
        """Generate the answer to `request`, handing each new token's id to `sink` as it comes
        (from this thread; the sink must not block). Stops at the next token once `cancelled` is set.
        The usage carries this request's memory figures (`backends.hf.memory`)."""
        probe = probe_for(list(self._weights) or [self._device])
        probe.start()  # before the inputs are built: they are part of what the request costs
        try:
            inputs, kwargs = self.prepare(request)
            streamer = _Streamer(sink)
            if request.seed is not None:
                torch.manual_seed(request.seed)
            with torch.inference_mode():
                self.model.generate(
                    **inputs, **kwargs, streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_Cancelled(cancelled)]),
                )
        except torch.OutOfMemoryError as exc:
            raise GenerationError(
                "out of memory while generating: ask for fewer tokens, a smaller image, or quantize=4bit"
            ) from exc
        finally:
            sink.end()
            probe.stop()
        self._last = self._report(probe.kind, probe.request_peak_bytes, probe.process_bytes)
        return Usage(input_tokens=int(inputs["input_ids"].shape[1]), output_tokens=streamer.generated,
                     memory=self._last)

    def _inputs(self, request: Request) -> Any:
        messages = chat_messages(request)
        template_kwargs: dict[str, Any] = {"enable_thinking": request.thinking}
        if request.tools:
            template_kwargs["tools"] = [t.to_openai() for t in request.tools]
        renderer = self.processor or self.tokenizer
        text = renderer.apply_chat_template(
            messages if self.processor else _text_only(messages),
            add_generation_prompt=True,
            tokenize=False,
            **template_kwargs,
        )
        if self.processor is None:
            inputs = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        else:
            # Every turn's attachments, in the order their placeholders appear in the text.
            images, audio = media_in_order(request)
            media: dict[str, Any] = {}
            if images:
                media["images"] = [decode_image(m) for m in images]
            if audio:
                media["audio"] = [decode_audio(m) for m in audio]
            inputs = self.processor(text=text, return_tensors="pt", add_special_tokens=False, **media)
            inputs.pop("num_soft_tokens_per_image", None)  # generate() does not take it
        inputs = inputs.to(self.model.device)
        dtype = next(self.model.parameters()).dtype
        for key in ("pixel_values", "input_features"):
            if key in inputs and inputs[key].is_floating_point() and dtype.is_floating_point:
                inputs[key] = inputs[key].to(dtype)
        return inputs

    def _token_id(self, token: str) -> int | None:
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        return None if token_id is None or token_id == self.tokenizer.unk_token_id else int(token_id)

    # ------------------------------------------------------------------ memory
    def memory(self) -> MemoryReport:
        """The figures of the last request (before any: the weights alone)."""
        if self._last is not None:
            return self._last
        kind = "cuda" if any(d.startswith("cuda") for d in self._weights) else "rss"
        return self._report(kind, None, None)

    def _report(self, kind: str, request_peak: int | None, process: int | None) -> MemoryReport:
        if self.options.in_process:  # the app's own process, shared with its other variants
            kind += " (whole app: in-process variant)"
        return MemoryReport(
            peak_bytes=process,
            weights_bytes=sum(self._weights.values()) if self._weights else None,
            kind=kind,
            request_peak_bytes=request_peak,
            weights_by_device=dict(self._weights),
        )


class TokenSink(Protocol):
    """Where `Engine.generate` hands the generated tokens."""

    def put(self, token_ids: list[int]) -> None:
        """New tokens, in order, from the generation thread."""

    def end(self) -> None:
        """Generation is over (also after a failure)."""


class _Streamer(BaseStreamer):
    """transformers calls put() with the prompt first, then with each new token, and end() once done."""

    def __init__(self, sink: TokenSink) -> None:
        self._sink = sink
        self._prompt_seen = False
        self.generated = 0

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        token_ids = value.reshape(-1).tolist()
        self.generated += len(token_ids)
        self._sink.put(token_ids)

    def end(self) -> None:
        self._sink.end()  # at once: the last tokens need not wait for generate() to return


class _Cancelled(StoppingCriteria):
    """A stopping criterion that ends generation as soon as the request is cancelled."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        done = self._event.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def special_token_ids(tokenizer: Any) -> set[int]:
    """Every special token id. `all_special_ids` lists only the named ones (bos, eos, media...);
    Gemma's markers (<|turn>, <|channel>, ...) are added tokens flagged special."""
    flagged = {i for i, token in getattr(tokenizer, "added_tokens_decoder", {}).items() if token.special}
    return flagged | set(tokenizer.all_special_ids)


def _text_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**m, "content": " ".join(p["text"] for p in m["content"] if p["type"] == "text")} for m in messages
    ]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
