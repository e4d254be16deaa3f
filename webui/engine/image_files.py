"""Image files that carry an infotext: PNG text chunks and EXIF UserComment.

Storage (as AUTOMATIC1111 web UI v1.10.1 writes it):

* PNG: a text chunk named ``parameters`` (tEXt, or iTXt when the text is not
  latin-1; this is what ``PngInfo.add_text`` does, and what A1111 uses).
* JPEG / WebP: EXIF ``UserComment`` (tag 0x9286 in the Exif IFD), encoded as
  ``b"UNICODE\\0" + UTF-16-BE`` like ``piexif.helper.UserComment.dump(..., encoding="unicode")``.

The text itself is built and parsed by ``webui.engine.infotext``.
Pure Python + Pillow: no torch, no gradio, no piexif.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from webui.files import temp_name

__all__ = [
    "encode_user_comment",
    "decode_user_comment",
    "png_info_for",
    "exif_bytes_for",
    "save_image_with_infotext",
    "read_infotext",
]

EXIF_IFD_POINTER = 0x8769
EXIF_USER_COMMENT = 0x9286
USER_COMMENT_UNICODE = b"UNICODE\x00"
USER_COMMENT_ASCII = b"ASCII\x00\x00\x00"
USER_COMMENT_JIS = b"JIS\x00\x00\x00\x00\x00"
USER_COMMENT_UNDEFINED = b"\x00" * 8
_TIFF_LONG = 4
_TIFF_UNDEFINED = 7
#: Largest EXIF block a JPEG APP1 segment can carry.
JPEG_MAX_EXIF_BYTES = 65533

PNG_TEXT_KEY = "parameters"
DEFAULT_QUALITY = 80  # A1111 opts.jpeg_quality default

_FORMAT_ALIASES = {"JPG": "JPEG", "PNG": "PNG", "JPEG": "JPEG", "WEBP": "WEBP"}
SUPPORTED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP"})


# --------------------------------------------------------------------------
# EXIF UserComment
# --------------------------------------------------------------------------

def encode_user_comment(text: str) -> bytes:
    """``b"UNICODE\\0"`` + UTF-16-BE, as ``piexif.helper.UserComment.dump(text, encoding="unicode")``."""
    return USER_COMMENT_UNICODE + text.encode("utf-16-be")


def _decode_utf16(body: bytes) -> str:
    if body.startswith(b"\xfe\xff"):
        orders = ("utf-16-be",)
        body = body[2:]
    elif body.startswith(b"\xff\xfe"):
        orders = ("utf-16-le",)
        body = body[2:]
    else:
        sample = body[:4096]
        zeros_even = sum(1 for b in sample[0::2] if b == 0)
        zeros_odd = sum(1 for b in sample[1::2] if b == 0)
        # ASCII-range text has its zero byte first in BE and second in LE.
        orders = ("utf-16-le", "utf-16-be") if zeros_odd > zeros_even else ("utf-16-be", "utf-16-le")
    if len(body) % 2:
        body = body[:-1]
    for encoding in orders:
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    return body.decode(orders[0], errors="replace")


def decode_user_comment(data: bytes | str | None) -> str:
    """Decode an EXIF UserComment value (UNICODE either byte order, ASCII, JIS, or raw UTF-8)."""
    if data is None:
        return ""
    if isinstance(data, str):
        return data.rstrip("\x00")
    data = bytes(data)
    prefix, body = data[:8], data[8:]
    if prefix == USER_COMMENT_UNICODE:
        text = _decode_utf16(body)
    elif prefix == USER_COMMENT_ASCII:
        text = body.decode("utf-8", errors="replace")
    elif prefix == USER_COMMENT_JIS:
        text = body.decode("shift_jis", errors="replace")
    elif prefix == USER_COMMENT_UNDEFINED:
        text = body.decode("utf-8", errors="ignore")
    else:  # no known prefix: A1111 falls back to utf-8 of the whole value
        text = data.decode("utf-8", errors="ignore")
    return text.rstrip("\x00")


def exif_bytes_for(infotext: str) -> bytes:
    """EXIF block (``b"Exif\\0\\0"`` + big-endian TIFF) whose Exif IFD holds ``infotext`` as UserComment.

    Built by hand so that UserComment gets the EXIF type UNDEFINED (7), as piexif
    writes it (Pillow's ``Image.Exif`` would store raw bytes as BYTE). Layout:
    IFD0 with one entry (ExifIFD pointer), then the Exif IFD with one entry
    (UserComment), then the comment bytes.
    """
    comment = encode_user_comment(infotext)
    ifd0_offset = 8
    exif_ifd_offset = ifd0_offset + 2 + 12 + 4
    data_offset = exif_ifd_offset + 2 + 12 + 4
    if len(comment) <= 4:
        value_field = comment.ljust(4, b"\x00")
        trailer = b""
    else:
        value_field = struct.pack(">I", data_offset)
        trailer = comment
    tiff = (
        b"MM\x00\x2a" + struct.pack(">I", ifd0_offset)
        + struct.pack(">H", 1)
        + struct.pack(">HHII", EXIF_IFD_POINTER, _TIFF_LONG, 1, exif_ifd_offset)
        + struct.pack(">I", 0)
        + struct.pack(">H", 1)
        + struct.pack(">HHI", EXIF_USER_COMMENT, _TIFF_UNDEFINED, len(comment)) + value_field
        + struct.pack(">I", 0)
        + trailer
    )
    return b"Exif\x00\x00" + tiff


def png_info_for(infotext: str | None, extra: Mapping[str, object] | None = None) -> PngImagePlugin.PngInfo:
    """PngInfo with ``extra`` text chunks, then ``parameters`` (tEXt, iTXt if not latin-1)."""
    info = PngImagePlugin.PngInfo()
    items: dict[str, object] = dict(extra or {})
    if infotext is not None:
        items[PNG_TEXT_KEY] = infotext
    for key, value in items.items():
        info.add_text(key, str(value))
    return info


# --------------------------------------------------------------------------
# Saving / loading images
# --------------------------------------------------------------------------

def _resolve_format(path: Path, format: str | None) -> str:
    if format:
        name = format.upper().lstrip(".")
    else:
        name = Image.registered_extensions().get(path.suffix.lower(), "")
    name = _FORMAT_ALIASES.get(name, name)
    if name not in SUPPORTED_FORMATS:
        raise ValueError(f"unsupported image format for infotext: {format or path.suffix!r} (PNG, JPEG or WebP)")
    return name


def _prepare_mode(image: Image.Image, fmt: str) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # A1111: scale 16-bit to 8-bit (L for JPEG, RGB for WebP)
        image = image.point(lambda p: p * (255 / 65535)).convert("L" if fmt == "JPEG" else "RGB")
    if fmt == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    elif fmt == "WEBP" and image.mode not in ("RGB", "RGBA"):
        has_alpha = image.mode in ("LA", "PA", "RGBa", "La") or (
            image.mode == "P" and "transparency" in image.info
        )
        image = image.convert("RGBA" if has_alpha else "RGB")
    return image


def _open_temp(folder: Path, name: str) -> tuple[int, Path]:
    for _ in range(100):
        temp = folder / temp_name(name)  # a crashed write's leftover is removed at the next start
        try:
            # mode 0o666 so the final file gets the usual umask-based permissions
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return fd, temp
    raise FileExistsError(f"could not create a temporary file in {folder}")


def save_image_with_infotext(
    image: Image.Image,
    path: str | os.PathLike[str],
    infotext: str | None,
    format: str | None = None,
    *,
    quality: int = DEFAULT_QUALITY,
    lossless: bool = False,
    extra_pnginfo: Mapping[str, object] | None = None,
) -> Path:
    """Save ``image`` to ``path`` with ``infotext`` embedded, atomically.

    The format comes from ``format`` or the suffix (PNG, JPEG, WebP). The image
    is written to a temporary file in the same folder and moved into place with
    ``os.replace``; on error the temporary file is removed. ``infotext=None``
    saves without metadata. Returns the final path.
    """
    path = Path(path)
    fmt = _resolve_format(path, format)
    image = _prepare_mode(image, fmt)

    options: dict[str, Any] = {}
    if fmt == "PNG":
        options["pnginfo"] = png_info_for(infotext, extra_pnginfo)
    else:
        options["quality"] = quality
        if fmt == "WEBP":
            options["lossless"] = lossless
        if infotext is not None:
            exif = exif_bytes_for(infotext)
            if fmt == "JPEG" and len(exif) > JPEG_MAX_EXIF_BYTES:
                raise ValueError(
                    f"infotext too long for a JPEG EXIF segment ({len(exif)} > {JPEG_MAX_EXIF_BYTES} bytes)"
                )
            options["exif"] = exif

    fd, temp = _open_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=fmt, **options)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return path


def _infotext_from_image(image: Image.Image) -> str | None:
    info = image.info or {}
    text = info.get(PNG_TEXT_KEY)
    text = None if text is None else str(text)

    if "exif" in info:
        try:
            comment = image.getexif().get_ifd(EXIF_IFD_POINTER).get(EXIF_USER_COMMENT)
        except Exception:  # malformed EXIF: ignore it, like A1111
            comment = None
        if comment:
            decoded = decode_user_comment(comment)
            if decoded:
                text = decoded
    elif "comment" in info and text is None:  # GIF
        comment = info["comment"]
        text = comment.decode("utf-8", errors="ignore") if isinstance(comment, bytes) else str(comment)

    return text or None


def read_infotext(image_or_path: Image.Image | str | os.PathLike[str]) -> str | None:
    """The infotext of an image or image file, or ``None`` when it has none.

    PNG: the ``parameters`` text chunk (read from ``info``, i.e. chunks before the
    image data, as A1111 does). JPEG/WebP (and any image with EXIF): the EXIF
    UserComment, which wins when present and non-empty. GIF: the comment.
    """
    if isinstance(image_or_path, Image.Image):
        return _infotext_from_image(image_or_path)
    with Image.open(image_or_path) as image:
        return _infotext_from_image(image)
