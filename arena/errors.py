"""The project's one small exception tree.

Every message says what went wrong and what to do about it; the CLI prints it on one line and the
UI shows it on the panel it concerns. Nothing here carries a traceback to the user.
"""

from __future__ import annotations


class ArenaError(Exception):
    """Base of every error Gemma Arena raises on purpose."""


class UsageError(ArenaError):
    """The user asked for something that cannot be done as asked (bad argument, file, spec)."""


class SpecError(UsageError):
    """A variant spec string that no registered backend understands."""


class MediaError(UsageError):
    """An image or audio file that is missing or not what it claims to be."""


class VariantError(ArenaError):
    """One variant failed. It is reported on that variant alone; the others carry on."""


class LoadError(VariantError):
    """The variant could not be made ready (weights missing, out of memory, server down)."""


class UnsupportedInput(VariantError):
    """The request carries something this variant cannot take (audio to a model without audio)."""


class WorkerDied(VariantError):
    """The process running the variant ended while it was needed."""


class VariantTimeout(VariantError):
    """The variant produced nothing for longer than its timeout."""


class Stopped(VariantError):
    """The user stopped the answer before it ended: what came so far is kept, cut short."""


class GenerationError(VariantError):
    """The engine raised while answering."""


class StorageError(ArenaError):
    """The vote store cannot be read or written as asked."""


class RemoteError(VariantError):
    """A serving engine (Ollama, vLLM, llama.cpp...) could not be reached or answered with an error."""
