"""Image loading, resizing and saving: the only place image files are read or written.

Images are handled as ``(H, W, 3)`` ``float32`` arrays with values in ``[0, 1]``.

Choices worth knowing about:

* Reading uses Pillow. Every Pillow mode is converted to RGB; transparency is composited
  over white. EXIF orientation is applied to the pixel array (the same eight transforms as
  ``PIL.ImageOps.exif_transpose``, done in numpy so that 16-bit data keeps its precision).
  No ICC colour management is done: pixel values are taken as sRGB.
* 16-bit PNGs keep their precision. Pillow decodes 16-bit grayscale natively; for 16-bit
  RGB, RGBA and gray+alpha PNGs (which Pillow reduces to 8 bits) the file is decoded with
  Pillow's own PNG decoder a second time with a raw mode that yields the low bytes.
* Resizing filters each channel as a Pillow ``"F"`` (32-bit float) image with
  ``Image.Resampling.LANCZOS``; Pillow widens the kernel when shrinking, so downscaling is
  antialiased. Lanczos rings slightly at sharp edges, so results are clipped to ``[0, 1]``.
* Saving is atomic: the file is written to a hidden temporary file in the target directory
  and moved onto the target with ``os.replace``. 16-bit RGB PNGs are encoded here (Pillow
  cannot write them); 8-bit PNGs and JPEGs are encoded by Pillow.
"""

from __future__ import annotations

import json
import operator
import os
import pathlib
import stat
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import IO, Union

import numpy as np
from PIL import Image, PngImagePlugin

from nst_jax import files

__all__ = [
    "ImageError",
    "ImageSource",
    "SUPPORTED_SUFFIXES",
    "image_size",
    "is_own_image",
    "load_image",
    "load_mask",
    "read_png_metadata",
    "resize_image",
    "save_image",
]

ImageSource = Union[str, "os.PathLike[str]", Image.Image, np.ndarray]

SUPPORTED_SUFFIXES: tuple[str, ...] = (".jpeg", ".jpg", ".png")
BIT_DEPTHS: tuple[int, ...] = (8, 16)
"""Bits per channel ``save_image`` writes (16 for PNG only); the first is the default."""

_EXIF_ORIENTATION_TAG = 0x0112
_TIFF_SAMPLE_FORMAT = 339  # 1 unsigned integer, 2 signed integer, 3 float
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})
_GRAY16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Raw modes Pillow uses for 16-bit PNGs it reduces to 8 bits -> raw mode for the second decode.
# "RGB;16L"/"RGBA;16L" read the second (low) byte of each big-endian sample; a 16-bit
# gray+alpha pixel is 4 bytes, which raw mode "RGBA" returns unchanged.
_PNG16_SECOND_PASS = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L", "LA;16B": "RGBA"}


class ImageError(ValueError):
    """An image that cannot be read or written; message names the file and the reason."""


# --------------------------------------------------------------------------- reading


def load_image(source: ImageSource) -> np.ndarray:
    """Returns the image at ``source`` as an ``(H, W, 3)`` float32 array in ``[0, 1]``."""
    if isinstance(source, Image.Image):
        try:
            rgb = _pil_to_rgb(source)
            return _orient(rgb, _exif_orientation(source))
        except ImageError:
            raise
        except Exception as e:  # Pillow raises many exception types for bad data.
            raise ImageError(f"cannot read image {_describe_pil(source)}: {_reason(e)}") from e
    if not isinstance(source, (str, os.PathLike)) and hasattr(source, "__array__"):
        return _array_to_rgb(np.asarray(source))  # numpy, and array-likes such as jax arrays
    path = _readable_path(source)
    try:
        return _read_file(path)
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"cannot read image '{path}': {_reason(e)}") from e


def load_mask(source: ImageSource, height: int, width: int) -> np.ndarray:
    """A greyscale mask (white = 1) at ``source`` as ``(height, width)`` float32 in ``[0, 1]``: read as an image
    (colour masks count by the mean of their channels; transparency is white), resized with Lanczos like images."""
    grey = load_image(source).mean(axis=-1)
    return resize_image(grey, height, width)


def image_size(source: ImageSource) -> tuple[int, int]:
    """Returns ``(height, width)`` of an image after EXIF orientation."""
    if isinstance(source, Image.Image):
        return _oriented_size(source.size, _exif_orientation(source))
    if not isinstance(source, (str, os.PathLike)) and hasattr(source, "shape"):
        shape = tuple(source.shape)
        if len(shape) not in (2, 3):
            raise ImageError(f"invalid image array: expected 2 or 3 dimensions, got shape {shape}")
        return int(shape[0]), int(shape[1])
    path = _readable_path(source)
    try:
        with Image.open(path) as im:
            return _oriented_size(im.size, _exif_orientation(im))
    except Exception as e:
        raise ImageError(f"cannot read image '{path}': {_reason(e)}") from e


def read_png_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """Returns the text chunks (tEXt, zTXt, iTXt) of a PNG file."""
    p = _readable_path(path)
    try:
        with Image.open(p) as im:
            if im.format != "PNG":
                raise ImageError(f"cannot read PNG metadata of '{p}': not a PNG file ({im.format})")
            return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"cannot read image '{p}': {_reason(e)}") from e


def _readable_path(source: object) -> pathlib.Path:
    """Returns ``source`` as a path to an existing regular file, else raises ImageError."""
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(
            f"cannot read image: expected a path, PIL.Image.Image or numpy array, got {type(source).__name__}"
        )
    path = pathlib.Path(source)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ImageError(f"cannot read image '{path}': no such file") from None
    except OSError as e:
        raise ImageError(f"cannot read image '{path}': {_reason(e)}") from e
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"cannot read image '{path}': is a directory")
    if not stat.S_ISREG(info.st_mode):  # reading a FIFO or a device could wait forever
        raise ImageError(f"cannot read image '{path}': {files.file_kind(path)}, not a regular file")
    if info.st_size == 0:
        raise ImageError(f"cannot read image '{path}': file is empty")
    return path


def _read_file(path: pathlib.Path) -> np.ndarray:
    """Decodes the image file at ``path`` to oriented RGB float32."""
    with Image.open(path) as im:
        second_pass = None
        rawmode = _tile_rawmode(im.tile[0]) if im.tile else None
        if im.format == "PNG" and len(im.tile) == 1:
            second_pass = _PNG16_SECOND_PASS.get(rawmode or "")
        white = _integer_white(im, rawmode) if im.mode == "I" else None
        im.load()
        orientation = _exif_orientation(im)
        if second_pass is None:
            return _orient(_pil_to_rgb(im, white), orientation)
        first = np.asarray(im)
        transparency = im.info.get("transparency")
    with Image.open(path) as im:
        tile = im.tile[0]  # a namedtuple in Pillow >= 11, a plain tuple before
        im.tile = [tile._replace(args=second_pass) if hasattr(tile, "_replace") else (*tile[:3], second_pass)]  # type: ignore[list-item]
        im.load()
        second = np.asarray(im)
    if second_pass == "RGBA":  # gray + alpha: bytes are (L hi, L lo, A hi, A lo)
        gray = second[..., 0].astype(np.uint32) << 8 | second[..., 1]
        alpha = second[..., 2].astype(np.uint32) << 8 | second[..., 3]
        values = np.stack([gray, gray, gray, alpha], axis=-1)
    else:
        values = first.astype(np.uint32) << 8 | second
        if values.shape[-1] == 3 and isinstance(transparency, tuple) and len(transparency) == 3:
            opaque = np.any(values != np.asarray(transparency, np.uint32), axis=-1)
            values = np.concatenate([values, (opaque * 65535)[..., None].astype(np.uint32)], -1)
    rgb = values.astype(np.float32) / 65535.0
    if rgb.shape[-1] == 4:
        rgb = _composite_over_white(rgb)
    return _orient(rgb, orientation)


def _tile_rawmode(tile: tuple) -> str | None:
    """Returns the raw mode of a Pillow tile descriptor, if it has one."""
    args = tile[3]
    if isinstance(args, tuple):
        args = args[0] if args else None
    return args if isinstance(args, str) else None


def _integer_white(im: Image.Image, rawmode: str | None) -> tuple[float, bool] | None:
    """The white level of a 32-bit integer (mode ``I``) image file and whether its samples are unsigned, from how
    the file stores them: 16-bit samples (PGM, some PNGs) 65535; 32-bit ones 2**32 - 1 unsigned, 2**31 - 1 signed.
    None when the file does not say."""
    if rawmode is None:
        return None
    if rawmode.startswith("I;16"):
        return 65535.0, False
    if rawmode.startswith("I;32") or rawmode == "I":
        tiff_format = getattr(im, "tag_v2", {}).get(_TIFF_SAMPLE_FORMAT)
        if isinstance(tiff_format, tuple):  # one entry per sample
            tiff_format = tiff_format[0] if tiff_format else None
        signed = ("S" in rawmode[4:] or rawmode == "I") if tiff_format is None else tiff_format == 2
        return (2.0**31 - 1, False) if signed else (2.0**32 - 1, True)
    return None


def _integer_gray(im: Image.Image, white: tuple[float, bool] | None) -> np.ndarray:
    """A mode ``I`` image as gray float32 in [0, 1], scaled by its ``white`` level. Without one (an image made in
    memory) 16-bit data is assumed, as Pillow used mode ``I`` for 16-bit PNGs; larger values are an error, not a
    silent clip to white."""
    raw = np.asarray(im)
    if white is not None and white[1]:  # unsigned 32-bit samples that Pillow holds as int32
        return raw.astype(np.int32).view(np.uint32).astype(np.float64) / white[0]
    if raw.size and raw.min() < 0:
        raise ImageError(f"cannot read image {_describe_pil(im)}: 32-bit integer samples below 0 ({raw.min()}); "
                         "convert it to 8/16-bit or to float in [0, 1]")
    if white is None:
        if raw.size and raw.max() > 65535:
            raise ImageError(
                f"cannot read image {_describe_pil(im)}: 32-bit integer samples up to {raw.max()} and no file to say "
                "what white is; convert it to 16-bit (mode I;16) or to float (mode F) in [0, 1]"
            )
        white = (65535.0, False)
    return raw.astype(np.float64) / white[0]


def _pil_to_rgb(im: Image.Image, white: tuple[float, bool] | None = None) -> np.ndarray:
    """Converts a Pillow image of any supported mode to ``(H, W, 3)`` float32 in ``[0, 1]``; ``white``: see
    ``_integer_white``."""
    mode = im.mode
    if mode in _GRAY16_MODES:
        raw = np.asarray(im)
        gray = np.clip(raw.astype(np.float32), 0.0, 65535.0) / 65535.0
        return _gray_with_transparency(gray, raw, im.info.get("transparency"))
    if mode == "I":
        gray = np.clip(_integer_gray(im, white), 0.0, 1.0).astype(np.float32)
        return _gray_with_transparency(gray, np.asarray(im), im.info.get("transparency"))
    if mode == "F":
        gray = np.asarray(im, dtype=np.float32)
        _check_float_range(gray, f"image {_describe_pil(im)}")
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "La":  # premultiplied gray + alpha: over white is L + (1 - alpha)
        la = np.asarray(im, dtype=np.float32) / 255.0
        gray = np.clip(la[..., 0] + (1.0 - la[..., 1]), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "LAB":  # Pillow's LAB -> RGB conversion copies channels without colour conversion
        raise ImageError(f"cannot read image {_describe_pil(im)}: LAB images are not supported, convert to RGB")
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        return _composite_over_white(rgba)
    try:
        rgb = im.convert("RGB")
    except ValueError as e:
        raise ImageError(f"cannot read image {_describe_pil(im)}: unsupported image mode '{mode}'") from e
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _gray_with_transparency(gray: np.ndarray, raw: np.ndarray, transparency: object) -> np.ndarray:
    """Turns a gray image into RGB, painting the transparent gray level (if any) white."""
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if isinstance(transparency, (int, np.integer)) and not isinstance(transparency, bool):
        rgb[raw == transparency] = 1.0
    return rgb


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """Converts an image array of a supported shape and dtype to RGB float32 in ``[0, 1]``."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ImageError(
            f"invalid image array: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"invalid image array: empty shape {array.shape}")
    values = _normalise_dtype(array, "image array")
    _check_float_range(values, "image array")
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    elif values.shape[-1] == 4:
        values = _composite_over_white(values)
    return np.array(values, dtype=np.float32, order="C", copy=True)


def _normalise_dtype(array: np.ndarray, what: str) -> np.ndarray:
    """Returns float32 values: uint8 / 255, uint16 / 65535, bool as 0/1, floats unchanged."""
    dtype = array.dtype
    if dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if dtype == np.bool_:
        return array.astype(np.float32)
    if dtype.kind in "iuc" or dtype.kind == "O":
        raise ImageError(f"invalid {what}: dtype {dtype} is not supported (use uint8, uint16 or float in [0, 1])")
    try:
        return array.astype(np.float32)  # float16/32/64 and e.g. bfloat16
    except (TypeError, ValueError) as e:
        raise ImageError(f"invalid {what}: dtype {dtype} is not supported") from e


def _check_float_range(values: np.ndarray, what: str) -> None:
    """Raises ImageError unless every value is finite and within ``[0, 1]``."""
    if not np.all(np.isfinite(values)):
        raise ImageError(f"invalid {what}: contains NaN or infinite values")
    if values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise ImageError(
            f"invalid {what}: float values must lie in [0, 1], "
            f"got min {float(values.min()):.6g}, max {float(values.max()):.6g}"
        )


def _composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """Composites straight (non-premultiplied) RGBA floats over a white background."""
    alpha = rgba[..., 3:4]
    return (rgba[..., :3] * alpha + (1.0 - alpha)).astype(np.float32)


def _exif_orientation(im: Image.Image) -> int:
    """Returns the EXIF orientation (1-8) of a Pillow image; 1 when absent or invalid."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except (AttributeError, KeyError, TypeError, ValueError, struct.error):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Applies an EXIF orientation to an ``(H, W, C)`` array like ``ImageOps.exif_transpose``."""
    transforms: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, k=1),
    }
    transform = transforms.get(orientation)
    out = array if transform is None else transform(array)
    return np.ascontiguousarray(out, dtype=np.float32)


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """Returns ``(height, width)`` from a Pillow ``(width, height)`` after orientation."""
    width, height = size
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _describe_pil(im: Image.Image) -> str:
    """Names a Pillow image in error messages: its file name, or its mode and size."""
    filename = getattr(im, "filename", None)
    if filename:
        return f"'{filename}'"
    return f"<PIL image mode={im.mode} size={im.size[0]}x{im.size[1]}>"


def _reason(error: BaseException) -> str:
    """Returns a short human-readable reason for an exception."""
    if isinstance(error, Image.UnidentifiedImageError):
        return "not a recognised image format"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower() if error.strerror[:1].isupper() else error.strerror
    text = str(error).strip()
    return text or type(error).__name__


# --------------------------------------------------------------------------- resizing


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes an image to ``height`` x ``width`` with Lanczos filtering, clipped to ``[0, 1]``."""
    height, width = _positive_int(height, "height"), _positive_int(width, "width")
    array = _float_image(image)
    if array.shape[:2] != (height, width):
        array = np.stack([
            np.asarray(
                Image.fromarray(np.ascontiguousarray(array[..., c])).resize((width, height), Image.Resampling.LANCZOS),
                dtype=np.float32,
            )
            for c in range(array.shape[-1])
        ], axis=-1)
    out = np.clip(array, 0.0, 1.0)
    return out[..., 0] if np.ndim(image) == 2 else out


def _positive_int(value: int, name: str) -> int:
    """Returns ``value`` as an int, raising ValueError unless it is a positive integer."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def _float_image(image: np.ndarray) -> np.ndarray:
    """Returns an ``(H, W)`` or ``(H, W, C)`` image as finite float32 ``(H, W, C)``."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] < 1 or array.shape[2] < 1:
        raise ImageError(f"invalid image array: expected shape (H, W) or (H, W, C), got {array.shape}")
    values = _normalise_dtype(array, "image array")
    if not np.all(np.isfinite(values)):
        raise ImageError("invalid image array: contains NaN or infinite values")
    return values


# --------------------------------------------------------------------------- writing

_Writer = Callable[[IO[bytes], np.ndarray, "Mapping[str, str] | None", int], None]


def is_own_image(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an image ``save_image`` wrote: its metadata (PNG text, JPEG comment) says nst_jax."""
    try:
        with Image.open(path) as im:
            if im.format == "PNG":
                return im.info.get("Software") == files.SOFTWARE
            if im.format == "JPEG":
                fields = json.loads(im.info.get("comment", b"{}"))
                return isinstance(fields, dict) and fields.get("Software") == files.SOFTWARE
    except Exception:  # not an image Pillow reads, or a comment that is not JSON: not one of ours
        return False
    return False


def save_image(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    bit_depth: int = BIT_DEPTHS[0],
    metadata: Mapping[str, str] | None = None,
    quality: int = 95,
) -> pathlib.Path:
    """Atomically writes an ``(H, W, 3)`` float image in ``[0, 1]`` as PNG or JPEG; returns the path.

    ``metadata`` is stored as PNG text chunks or a JPEG comment, with ``Software: nst_jax`` (``is_own_image``).
    """
    target = pathlib.Path(path)
    suffix = target.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ImageError(
            f"cannot write image '{target}': unsupported suffix '{target.suffix}' "
            f"(supported: {', '.join(SUPPORTED_SUFFIXES)})"
        )
    if bit_depth not in BIT_DEPTHS or isinstance(bit_depth, bool):
        raise ImageError(f"cannot write image '{target}': bit_depth must be 8 or 16, got {bit_depth!r}")
    if bit_depth == 16 and suffix != ".png":
        raise ImageError(f"cannot write image '{target}': JPEG supports only bit_depth=8")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ImageError(f"cannot write image '{target}': quality must be an integer in [1, 100], got {quality!r}")
    text = _check_metadata({"Software": files.SOFTWARE, **(metadata or {})}, target)
    pixels = _quantise(image, bit_depth, target)

    directory = target.parent
    if not directory.exists():
        raise ImageError(f"output directory '{directory}' does not exist")
    if not directory.is_dir():
        raise ImageError(f"output directory '{directory}' is not a directory")
    if target.is_dir():
        raise ImageError(f"cannot write image '{target}': is a directory")

    writer: _Writer = _write_jpeg if suffix in (".jpg", ".jpeg") else _write_png
    _atomic_write(target, lambda f: writer(f, pixels, text, int(quality)))
    return target


def _check_metadata(metadata: Mapping[str, str] | None, target: pathlib.Path) -> dict[str, str] | None:
    """Validates metadata keys (1-79 Latin-1 characters) and values (strings without NUL)."""
    if metadata is None:
        return None
    text: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ImageError(
                f"cannot write image '{target}': metadata keys and values must be str, got {key!r}: {value!r}"
            )
        try:
            key.encode("latin-1")
        except UnicodeEncodeError:
            raise ImageError(f"cannot write image '{target}': metadata key {key!r} is not Latin-1") from None
        if not 1 <= len(key) <= 79 or "\0" in key or "\0" in value:
            raise ImageError(
                f"cannot write image '{target}': metadata key {key!r} must have 1-79 characters "
                "and neither key nor value may contain NUL"
            )
        text[key] = value
    return text


def _quantise(image: np.ndarray, bit_depth: int, target: pathlib.Path) -> np.ndarray:
    """Clips an ``(H, W, 3)`` image to ``[0, 1]`` and rounds it to uint8 or uint16."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"cannot write image '{target}': expected an (H, W, 3) array, got shape {array.shape}")
    values = _normalise_dtype(array, f"image for '{target}'")
    if not np.all(np.isfinite(values)):
        raise ImageError(f"cannot write image '{target}': image contains NaN or infinite values")
    peak, dtype = (255, np.uint8) if bit_depth == 8 else (65535, np.uint16)
    return np.rint(np.clip(values.astype(np.float64), 0.0, 1.0) * peak).astype(dtype)


def _atomic_write(target: pathlib.Path, write: Callable[[IO[bytes]], None]) -> None:
    """Writes via ``write`` to a temporary file next to ``target``, then renames it onto ``target``."""
    try:
        files.atomic_write(target, write)
    except ImageError:
        raise
    except Exception as e:
        raise ImageError(f"cannot write image '{target}': {_reason(e)}") from e


def _write_jpeg(f: IO[bytes], pixels: np.ndarray, text: Mapping[str, str] | None, quality: int) -> None:
    """Encodes uint8 RGB pixels as JPEG (4:4:4), with metadata as a JSON comment."""
    options: dict[str, object] = {"quality": quality, "subsampling": 0}
    if text:
        options["comment"] = json.dumps(dict(text), ensure_ascii=True)
    Image.fromarray(pixels).save(f, format="JPEG", **options)


def _write_png(f: IO[bytes], pixels: np.ndarray, text: Mapping[str, str] | None, quality: int) -> None:
    """Encodes uint8 or uint16 RGB pixels as PNG with metadata as tEXt/iTXt chunks."""
    del quality  # PNG is lossless.
    if pixels.dtype == np.uint16:
        f.write(_encode_png16(pixels, text or {}))
        return
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)  # Latin-1 values as tEXt, others as UTF-8 iTXt.
    Image.fromarray(pixels).save(f, format="PNG", pnginfo=info, compress_level=6)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """Returns one PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png16(pixels: np.ndarray, text: Mapping[str, str]) -> bytes:
    """Encodes ``(H, W, 3)`` uint16 pixels as a 48-bit truecolour PNG."""
    height, width, _ = pixels.shape
    raw: np.ndarray = pixels.astype(">u2").view(np.uint8).reshape(height, width * 6)
    chunks = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))]
    for key, value in text.items():
        try:
            chunks.append(_png_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
        except UnicodeEncodeError:
            chunks.append(_png_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")))
    chunks.append(_png_chunk(b"IDAT", zlib.compress(_png_filter(raw, bpp=6).tobytes(), 6)))
    chunks.append(_png_chunk(b"IEND", b""))
    return b"".join(chunks)


def _png_filter(raw: np.ndarray, bpp: int) -> np.ndarray:
    """Applies PNG scanline filters, choosing per row the one with the smallest sum of |residual|."""
    x: np.ndarray = raw.astype(np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]  # left
    b = np.zeros_like(x)
    b[1:] = x[:-1]  # up
    c = np.zeros_like(x)
    c[1:, bpp:] = x[:-1, :-bpp]  # up-left
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    del p, pa, pb, pc, c
    out = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
    best_cost = np.full(raw.shape[0], np.inf)
    for filter_type, prediction in enumerate([None, a, b, (a + b) // 2, paeth]):  # PNG filter types 0-4
        residual: np.ndarray = (x if prediction is None else x - prediction).astype(np.uint8)  # modulo 256
        cost = np.abs(residual.view(np.int8).astype(np.int64)).sum(axis=1)  # residuals as signed bytes
        better = cost < best_cost
        best_cost[better] = cost[better]
        out[better, 0] = filter_type
        out[better, 1:] = residual[better]
    return out
