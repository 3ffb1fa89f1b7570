"""Reading and checking the image and audio files a user attaches, at the boundary (CLI, UI).

Every check costs little and comes before the work it saves: the size from `stat` before a byte is
read, then the type, pixel count and clip length from the file's header (Pillow opens lazily,
libsndfile reads the header), never by decoding the whole image or clip.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from arena.errors import MediaError
from arena.limits import (
    AUDIO_TYPES,
    DEFAULT_LIMITS,
    FLAGS,
    GEMMA4_AUDIO_S,
    IMAGE_TYPES,
    MIME_TYPES,
    Limits,
    too_much,
)
from arena.units import format_bytes
from backends.base import Media


def read_image(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Media:
    """An image file as Media, or a MediaError saying what is wrong with it and what to give."""
    data = _read(path, "image", limits)
    return _image(data, Path(path).name, limits)


def read_audio(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Media:
    """An audio clip as Media, or a MediaError saying what is wrong with it and what to give."""
    data = _read(path, "audio", limits)
    return _audio(data, Path(path).name, limits)


def read_attachment(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Media:
    """An image or an audio clip, told apart by content (the name a browser sent proves nothing)."""
    data = _read(path, "attached", limits)
    name = Path(path).name
    if _image_format(data) is not None:
        return _image(data, name, limits)
    if _audio_format(data) is not None:
        return _audio(data, name, limits)
    raise MediaError(
        f"{name} is neither an image nor an audio clip that can be read: attach "
        f"{_listed(limits.image_types)} images or {_listed(limits.audio_types)} audio"
    )


def check_media(media: Media, limits: Limits = DEFAULT_LIMITS) -> Media:
    """Media already in memory, checked as if it had been read from a file; returned as it is."""
    name = media.name or media.kind
    if len(media.data) > limits.max_upload_bytes:
        raise _too_big(name, len(media.data), limits)
    (_image if media.kind == "image" else _audio)(media.data, name, limits)
    return media


def _image(data: bytes, name: str, limits: Limits) -> Media:
    from PIL import Image, UnidentifiedImageError

    try:
        # Pillow warns (without refusing) from 89 MP on; warnings.catch_warnings is not thread-safe,
        # and the refusal below is what counts, so the warning is left alone.
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            kind = _type_of(image.format or "?", IMAGE_TYPES)
            if kind not in limits.image_types:
                raise _wrong_type(name, kind, limits.image_types, "images", IMAGE_TYPES)
            width, height = image.size
            if width * height > limits.max_image_pixels:
                raise too_much(
                    name, f"{width * height:,} pixels ({width} x {height})", f"{limits.max_image_pixels:,}",
                    "downscale it (the model sees at most ~2.6 million of them)", "max_image_pixels", MediaError,
                )
            image.verify()  # the rest of the file holds together, still without decoding pixels
    except Image.DecompressionBombError as exc:
        raise too_much(name, "more pixels than Pillow opens", f"{limits.max_image_pixels:,}",
                       "downscale it", "max_image_pixels", MediaError) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(
            f"{name} is not an image that can be read ({type(exc).__name__}); give a "
            f"{_listed(limits.image_types)} file"
        ) from exc
    return Media(kind="image", data=data, mime=MIME_TYPES[kind], name=name)


def _audio(data: bytes, name: str, limits: Limits) -> Media:
    info = _audio_format(data)
    if info is None:
        raise MediaError(f"{name} is not an audio file that can be read; give a {_listed(limits.audio_types)} file")
    fmt, frames, rate = info
    kind = _type_of(fmt, AUDIO_TYPES)
    if kind not in limits.audio_types:
        raise _wrong_type(name, kind, limits.audio_types, "audio", AUDIO_TYPES)
    if frames == 0:
        raise MediaError(f"{name} holds no audio samples; record or pick a clip with sound in it")
    seconds = frames / rate
    if seconds > limits.max_audio_s:
        if limits.max_audio_s >= GEMMA4_AUDIO_S:  # the model's own limit: raising ours would not help
            raise MediaError(
                f"{name} is {seconds:,.1f} s long; Gemma 4's audio encoder takes at most {GEMMA4_AUDIO_S:g} s "
                f"and would cut the rest: trim it to {GEMMA4_AUDIO_S:g} s or less, or split it"
            )
        raise too_much(name, f"{seconds:,.1f} s of audio", f"{limits.max_audio_s:g} s", "trim it", "max_audio_s",
                       MediaError)
    return Media(kind="audio", data=data, mime=MIME_TYPES[kind], name=name)


def _image_format(data: bytes) -> str | None:
    """The format Pillow reads in the header, or None for anything Pillow cannot open."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format or "?"
    except Image.DecompressionBombError:
        return "?"  # an image, too large to open: `_image` says so
    except Exception:  # UnidentifiedImageError, or a plugin's own error on a broken header
        return None


def _audio_format(data: bytes) -> tuple[str, int, int] | None:
    """(format, frames, sample rate) from the header, or None for anything libsndfile cannot open."""
    import soundfile

    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        return None
    if info.samplerate <= 0:
        return None
    return str(info.format), int(info.frames), int(info.samplerate)


def _type_of(fmt: str, types: Mapping[str, tuple[str, ...]]) -> str:
    """The type name (png, wav...) of a decoder's format name, or the format itself, lower-cased."""
    return next((name for name, formats in types.items() if fmt in formats), fmt.lower())


def _wrong_type(
    name: str, kind: str, allowed: tuple[str, ...], what: str, known: Mapping[str, tuple[str, ...]]
) -> MediaError:
    takes = f"{_listed(allowed)} {what}" if allowed else f"no {what}"
    flag = FLAGS["image_types" if what == "images" else "audio_types"]
    fix = f"convert it, or add {kind} to {flag}" if kind in known else "convert it"
    return MediaError(f"{name} is {_listed((kind,))}, which is not taken; this arena takes {takes}: {fix}")


def _too_big(name: str, size: int, limits: Limits) -> MediaError:
    return MediaError(str(too_much(name, format_bytes(size), format_bytes(limits.max_upload_bytes),
                                   "send a smaller or more compressed file", "max_upload_bytes")))


def _read(path: str | Path, what: str, limits: Limits) -> bytes:
    file = Path(path)
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise MediaError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise MediaError(f"{what} file {path} cannot be read: {exc.strerror}") from exc
    if not file.is_file():
        raise MediaError(f"{what} path {path} is not a file")
    if size > limits.max_upload_bytes:  # refused before a byte is read
        raise _too_big(file.name, size, limits)
    try:
        with open(file, "rb") as stream:
            data = stream.read(limits.max_upload_bytes + 1)  # a file that grew since stat stops here
    except OSError as exc:
        raise MediaError(f"{what} file {path} cannot be read: {exc.strerror}") from exc
    if len(data) > limits.max_upload_bytes:
        raise _too_big(file.name, len(data), limits)
    if not data:
        raise MediaError(f"{what} file {path} is empty")
    return data


def _listed(types: tuple[str, ...]) -> str:
    """("png", "jpeg", "webp") -> "PNG, JPEG or WebP"."""
    shown = ["WebP" if name == "webp" else name.upper() for name in types]
    if len(shown) < 2:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " or " + shown[-1]
