"""Tests for nst_jax.image_io: every image is created in tmp_path at run time."""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from nst_jax import image_io
from nst_jax.image_io import (
    ImageError,
    image_size,
    is_own_image,
    load_image,
    read_png_metadata,
    resize_image,
    save_image,
)

EXACT_8BIT = 1e-6  # float32 rounding of k / 255
ONE_16BIT_STEP = 1.0 / 65535.0


def _random_image(height: int = 24, width: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def _handmade_png(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes, extra: bytes = b"") -> bytes:
    """A minimal PNG (filter type 0 on every row), independent of the module's encoder."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    stride = len(raw) // height
    rows = b"".join(b"\0" + raw[r * stride : (r + 1) * stride] for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _chunk(png: bytes, kind: bytes) -> bytes:
    """The data of the first chunk of type ``kind`` in a PNG file's bytes."""
    position = 8
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        if png[position + 4 : position + 8] == kind:
            return png[position + 8 : position + 8 + length]
        position += 12 + length
    raise AssertionError(f"no {kind!r} chunk")


# --------------------------------------------------------------------------- modes


def _pixel(image: np.ndarray, y: int = 0, x: int = 0) -> np.ndarray:
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
    return image[y, x]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 51, (0.2, 0.2, 0.2)),
        ("1", 1, (1.0, 1.0, 1.0)),
        ("1", 0, (0.0, 0.0, 0.0)),
        ("LA", (51, 255), (0.2, 0.2, 0.2)),
        ("LA", (51, 0), (1.0, 1.0, 1.0)),  # fully transparent -> white
        ("LA", (0, 51), (0.8, 0.8, 0.8)),  # black at alpha 0.2 over white
        ("RGB", (255, 102, 0), (1.0, 0.4, 0.0)),
        ("RGBA", (255, 0, 0, 255), (1.0, 0.0, 0.0)),
        ("RGBA", (255, 0, 0, 0), (1.0, 1.0, 1.0)),
        ("RGBA", (0, 0, 255, 102), (0.6, 0.6, 1.0)),  # blue at alpha 0.4 over white
        ("CMYK", (0, 0, 0, 0), (1.0, 1.0, 1.0)),
        ("CMYK", (0, 255, 0, 0), (1.0, 0.0, 1.0)),  # magenta
        ("CMYK", (0, 0, 0, 255), (0.0, 0.0, 0.0)),
        ("I", 13107, (0.2, 0.2, 0.2)),  # 32-bit int holding 16-bit data (Pillow's old mode for 16-bit PNGs)
        ("F", 0.25, (0.25, 0.25, 0.25)),
    ],
)
def test_pil_modes_convert_to_rgb(mode, value, expected):
    im = Image.new(mode, (3, 2), value)
    out = load_image(im)
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(_pixel(out, 1, 2), expected, atol=EXACT_8BIT)


def test_32bit_integer_tiff_uses_the_full_32_bit_range(tmp_path):
    """A 32-bit signed TIFF's white is 2**31 - 1; clipping it as 16-bit data would make almost every pixel white."""
    values = np.linspace(0, 2**31 - 1, 6 * 7).astype(np.int32).reshape(6, 7)
    Image.fromarray(values).save(tmp_path / "i32.tif")
    out = load_image(tmp_path / "i32.tif")
    np.testing.assert_allclose(out[..., 0], values / (2**31 - 1), rtol=0, atol=1e-6)
    assert np.mean(out >= 1.0) < 0.05


def test_32bit_integer_images_that_cannot_be_scaled_are_refused(tmp_path):
    Image.fromarray(np.full((2, 3), -5, np.int32)).save(tmp_path / "negative.tif")
    with pytest.raises(ImageError, match="below 0"):
        load_image(tmp_path / "negative.tif")
    with pytest.raises(ImageError, match="up to 70000"):  # made in memory: nothing says what white is
        load_image(Image.new("I", (3, 2), 70000))


def test_16bit_pgm_opened_as_mode_i_is_scaled_as_16_bit(tmp_path):
    values = np.array([[0, 1, 32768], [65534, 65535, 12345]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "gray.pgm")
    with Image.open(tmp_path / "gray.pgm") as im:
        assert im.mode == "I"
    np.testing.assert_allclose(load_image(tmp_path / "gray.pgm")[..., 0], values / 65535.0, rtol=0, atol=1e-7)


def test_pil_16bit_gray_modes():
    values = np.array([[0, 1, 32768], [65534, 65535, 12345]], dtype=np.uint16)
    for mode, data in [("I;16", values.astype("<u2").tobytes()), ("I;16B", values.astype(">u2").tobytes())]:
        out = load_image(Image.frombytes(mode, (3, 2), data))
        np.testing.assert_allclose(out[..., 0], values / 65535.0, rtol=0, atol=1e-7)
        np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_palette_modes_from_png_files(tmp_path):
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9)
    im = Image.new("P", (2, 2), 1)
    im.putpalette(palette)
    im.putpixel((1, 1), 2)
    im.save(tmp_path / "p.png")
    im.save(tmp_path / "p_trans.png", transparency=1)  # index 1 (red) is transparent

    plain = load_image(tmp_path / "p.png")
    np.testing.assert_allclose(plain[0, 0], (1, 0, 0), atol=EXACT_8BIT)
    np.testing.assert_allclose(plain[1, 1], (0, 1, 0), atol=EXACT_8BIT)
    trans = load_image(tmp_path / "p_trans.png")
    np.testing.assert_allclose(trans[0, 0], (1, 1, 1), atol=EXACT_8BIT)  # transparent -> white
    np.testing.assert_allclose(trans[1, 1], (0, 1, 0), atol=EXACT_8BIT)


def test_modes_from_files(tmp_path):
    cases = {
        "l.png": (Image.new("L", (2, 2), 51), (0.2, 0.2, 0.2)),
        "la.png": (Image.new("LA", (2, 2), (0, 51)), (0.8, 0.8, 0.8)),
        "one.png": (Image.new("1", (2, 2), 1), (1.0, 1.0, 1.0)),
        "rgba.png": (Image.new("RGBA", (2, 2), (0, 0, 255, 102)), (0.6, 0.6, 1.0)),
        "cmyk.tif": (Image.new("CMYK", (2, 2), (0, 255, 0, 0)), (1.0, 0.0, 1.0)),
        "f.tif": (Image.new("F", (2, 2), 0.75), (0.75, 0.75, 0.75)),
    }
    for name, (im, expected) in cases.items():
        im.save(tmp_path / name)
        out = load_image(tmp_path / name)
        assert out.shape == (2, 2, 3) and out.dtype == np.float32, name
        np.testing.assert_allclose(out[1, 1], expected, atol=EXACT_8BIT, err_msg=name)


def test_tRNS_colour_key_in_rgb_and_gray_png(tmp_path):
    rgb = Image.new("RGB", (2, 1), (10, 20, 30))
    rgb.putpixel((1, 0), (200, 100, 0))
    rgb.save(tmp_path / "rgb_trns.png", transparency=(10, 20, 30))
    out = load_image(tmp_path / "rgb_trns.png")
    np.testing.assert_allclose(out[0, 0], (1, 1, 1), atol=EXACT_8BIT)
    np.testing.assert_allclose(out[0, 1], np.array([200, 100, 0]) / 255, atol=EXACT_8BIT)

    gray = np.array([[1000, 40000]], dtype=">u2").tobytes()
    trns = struct.pack(">I", 2) + b"tRNS" + struct.pack(">H", 1000)
    trns += struct.pack(">I", zlib.crc32(b"tRNS" + struct.pack(">H", 1000)))
    (tmp_path / "gray16_trns.png").write_bytes(_handmade_png(2, 1, 16, 0, gray, extra=trns))
    out = load_image(tmp_path / "gray16_trns.png")
    np.testing.assert_allclose(out[0, 0], (1, 1, 1), atol=1e-7)
    np.testing.assert_allclose(out[0, 1], [40000 / 65535] * 3, atol=1e-7)


def test_premultiplied_gray_alpha():
    out = load_image(Image.new("La", (2, 2), (20, 51)))  # premultiplied: gray 20 at alpha 0.2
    np.testing.assert_allclose(out[0, 0], [(20 + 204) / 255] * 3, atol=EXACT_8BIT)


def test_lab_mode_is_rejected_instead_of_miscoloured():
    with pytest.raises(ImageError, match="LAB"):
        load_image(Image.new("LAB", (2, 2)))


# --------------------------------------------------------------------------- arrays


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((2, 3), 51, np.uint8), (0.2, 0.2, 0.2)),
        (np.full((2, 3, 1), 13107, np.uint16), (0.2, 0.2, 0.2)),
        (np.full((2, 3, 3), 0.25, np.float64), (0.25, 0.25, 0.25)),
        (np.tile(np.array([255, 0, 0], np.uint8), (2, 3, 1)), (1.0, 0.0, 0.0)),
        (np.tile(np.array([0.0, 0.0, 1.0, 0.4], np.float32), (2, 3, 1)), (0.6, 0.6, 1.0)),
        (np.tile(np.array([0, 0, 0, 0], np.uint8), (2, 3, 1)), (1.0, 1.0, 1.0)),
        (np.ones((2, 3), bool), (1.0, 1.0, 1.0)),
    ],
)
def test_arrays_convert_to_rgb(array, expected):
    out = load_image(array)
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    assert out.flags["C_CONTIGUOUS"] and not np.shares_memory(out, array)
    np.testing.assert_allclose(out[1, 2], expected, atol=1e-6)


def test_array_likes_are_accepted():
    class ArrayLike:  # e.g. a jax.Array
        shape = (2, 3, 3)

        def __array__(self, dtype=None, copy=None):
            return np.full(self.shape, 0.5, dtype or np.float32)

    np.testing.assert_allclose(load_image(ArrayLike()), 0.5)
    assert image_size(ArrayLike()) == (2, 3)


@pytest.mark.parametrize(
    "array",
    [
        np.full((2, 2, 3), 1.5, np.float32),
        np.full((2, 2, 3), -0.1, np.float32),
        np.full((2, 2, 3), np.nan, np.float32),
        np.full((2, 2, 3), np.inf, np.float64),
        np.zeros((2, 2, 3), np.int64),
        np.zeros((2, 2, 2), np.float32),
        np.zeros((2, 2, 3, 1), np.float32),
        np.zeros((0, 2, 3), np.float32),
    ],
)
def test_bad_arrays_raise_image_error(array):
    with pytest.raises(ImageError, match="invalid image array"):
        load_image(array)


# --------------------------------------------------------------------------- EXIF orientation


def _marked_image() -> Image.Image:
    """A 48x32 (W x H) image: red top-left quadrant, blue elsewhere; large blocks survive JPEG."""
    arr = np.zeros((32, 48, 3), np.uint8)
    arr[...] = (0, 0, 255)
    arr[:16, :24] = (255, 0, 0)
    return Image.fromarray(arr)


def test_exif_orientation_6_jpeg_is_rotated(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held rotated: display rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    _marked_image().save(path, exif=exif, quality=95)

    assert image_size(path) == (48, 32)
    out = load_image(path)
    assert out.shape == (48, 32, 3)
    # Rotating clockwise moves the red top-left quadrant to the top-right.
    np.testing.assert_allclose(out[4, 28], (1, 0, 0), atol=0.05)
    np.testing.assert_allclose(out[4, 4], (0, 0, 1), atol=0.05)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pil_exif_transpose(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(arr).save(path, exif=exif)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32) / 255
    np.testing.assert_allclose(load_image(path), expected, atol=EXACT_8BIT)
    assert image_size(path) == expected.shape[:2]


def test_image_size_without_exif(tmp_path):
    save_image(tmp_path / "a.png", _random_image(24, 40))
    assert image_size(tmp_path / "a.png") == (24, 40)
    assert image_size(np.zeros((5, 6, 3))) == (5, 6)
    assert image_size(Image.new("RGB", (6, 5))) == (5, 6)


# --------------------------------------------------------------------------- round trips


def test_png_8bit_round_trip_is_exact(tmp_path):
    quantised = np.rint(_random_image() * 255) / 255
    path = save_image(tmp_path / "out.png", quantised)
    assert path == tmp_path / "out.png"
    with Image.open(path) as im:
        assert (im.format, im.mode) == ("PNG", "RGB")
    np.testing.assert_allclose(load_image(path), quantised, rtol=0, atol=EXACT_8BIT)


def test_png_16bit_round_trip_keeps_precision(tmp_path):
    image = _random_image(31, 45)
    image[0, :3] = (0.0, 1.0, 0.5)
    path = save_image(tmp_path / "out16.png", image, bit_depth=16)
    header = path.read_bytes()[16:26]
    assert struct.unpack(">IIBB", header) == (45, 31, 16, 2)  # width, height, 16-bit, truecolour
    out = load_image(path)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, image, rtol=0, atol=2 * ONE_16BIT_STEP)
    # 8-bit quantisation would be off by up to 1/510; make sure we are far below that.
    assert np.abs(out - image).max() < 1.0 / 1000


def test_png_16bit_encoder_filters_are_decoded_by_pillow(tmp_path):
    """Smooth gradients make the encoder pick Sub/Up/Average/Paeth rows; Pillow must agree."""
    y, x = np.mgrid[0:40, 0:50] / 50.0
    image = np.stack([x, y, (x * y) % 1.0], axis=-1).astype(np.float32)
    image[::7] = _random_image(6, 50, seed=3)  # some rows that prefer filter "None"
    path = save_image(tmp_path / "grad.png", image, bit_depth=16)
    data = zlib.decompress(_chunk(path.read_bytes(), b"IDAT"))
    filter_types = {data[r * (1 + 50 * 6)] for r in range(40)}
    assert len(filter_types) >= 3
    expected = np.rint(image.astype(np.float64) * 65535)
    np.testing.assert_array_equal(np.rint(load_image(path).astype(np.float64) * 65535), expected)


@pytest.mark.parametrize(("colour_type", "channels"), [(2, 3), (6, 4), (4, 2)])
def test_16bit_png_from_other_encoders_keeps_precision(tmp_path, colour_type, channels):
    rng = np.random.default_rng(colour_type)
    values = rng.integers(0, 65536, (3, 4, channels), dtype=np.uint16)
    values[..., -1] = 65535 if channels in (2, 4) else values[..., -1]  # opaque alpha
    path = tmp_path / f"ct{colour_type}.png"
    path.write_bytes(_handmade_png(4, 3, 16, colour_type, values.astype(">u2").tobytes()))
    expected = values / 65535.0
    expected = np.repeat(expected[..., :1], 3, -1) if channels == 2 else expected[..., :3]
    np.testing.assert_allclose(load_image(path), expected, rtol=0, atol=1e-7)


def test_16bit_rgba_png_composites_over_white_in_16_bit(tmp_path):
    values = np.array([[[0, 0, 65535, 26214], [1, 2, 3, 0]]], dtype=np.uint16)
    path = tmp_path / "rgba16.png"
    path.write_bytes(_handmade_png(2, 1, 16, 6, values.astype(">u2").tobytes()))
    out = load_image(path)
    np.testing.assert_allclose(out[0, 0], (0.6, 0.6, 1.0), atol=1e-6)
    np.testing.assert_allclose(out[0, 1], (1.0, 1.0, 1.0), atol=1e-6)


def test_gray_16bit_png_keeps_precision(tmp_path):
    values = np.arange(0, 65536, 4099, dtype=np.uint16).reshape(2, 8)
    Image.fromarray(values).save(tmp_path / "g16.png")
    np.testing.assert_allclose(load_image(tmp_path / "g16.png")[..., 1], values / 65535.0, rtol=0, atol=1e-7)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_writes_and_reads_back_close(tmp_path, suffix):
    y, x = np.mgrid[0:32, 0:48]
    image = np.stack([x / 47, y / 31, np.full_like(x, 0.5, dtype=float)], -1).astype(np.float32)
    path = save_image(tmp_path / f"out{suffix}", image, quality=95)
    with Image.open(path) as im:
        assert im.format == "JPEG"
    out = load_image(path)
    assert out.shape == image.shape
    np.testing.assert_allclose(out, image, rtol=0, atol=0.03)  # smooth image, quality 95
    assert np.abs(out - image).mean() < 0.005


def test_jpeg_quality_changes_file_size(tmp_path):
    image = _random_image(64, 64)
    small = save_image(tmp_path / "q10.jpg", image, quality=10).stat().st_size
    large = save_image(tmp_path / "q95.jpg", image, quality=95).stat().st_size
    assert small < large


def test_save_clips_out_of_range_values(tmp_path):
    image = np.full((2, 2, 3), 0.5, np.float32)
    image[0, 0] = (-0.5, 1.5, 1.0)
    out = load_image(save_image(tmp_path / "clip.png", image))
    np.testing.assert_allclose(out[0, 0], (0, 1, 1), atol=EXACT_8BIT)


# --------------------------------------------------------------------------- metadata

METADATA = {"nst:content": "cat.png", "nst:config": json.dumps({"steps": 500, "lr": 1.0}), "unicode": "naïve €"}
MARK = {"Software": "nst_jax"}  # every image save_image writes says who wrote it (nst_jax.files' rule 2)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_metadata_round_trip(tmp_path, bit_depth):
    path = save_image(tmp_path / "meta.png", _random_image(), bit_depth=bit_depth, metadata=METADATA)
    assert read_png_metadata(path) == {**MARK, **METADATA}
    assert is_own_image(path)


def test_png_without_metadata_has_only_the_mark(tmp_path):
    assert read_png_metadata(save_image(tmp_path / "plain.png", _random_image())) == MARK


def test_jpeg_metadata_is_a_json_comment(tmp_path):
    path = save_image(tmp_path / "meta.jpg", _random_image(), metadata=METADATA)
    with Image.open(path) as im:
        assert json.loads(im.info["comment"]) == {**MARK, **METADATA}
    assert is_own_image(path)


def test_images_nst_jax_did_not_write_are_not_its_own(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg", comment=b"not json")
    Image.new("RGB", (4, 4)).save(tmp_path / "b.jpg", comment=json.dumps({"Software": "GIMP"}).encode())
    (tmp_path / "text.png").write_text("hello")
    assert not any(is_own_image(tmp_path / name) for name in ("a.png", "a.jpg", "b.jpg", "text.png", "absent.png"))


def test_read_png_metadata_rejects_non_png(tmp_path):
    path = save_image(tmp_path / "meta.jpg", _random_image())
    with pytest.raises(ImageError, match="not a PNG"):
        read_png_metadata(path)


@pytest.mark.parametrize("metadata", [{"": "v"}, {"k" * 80: "v"}, {"k": "a\0b"}, {"€": "v"}, {"k": 1}])
def test_invalid_metadata_raises_image_error(tmp_path, metadata):
    with pytest.raises(ImageError, match="metadata"):
        save_image(tmp_path / "bad.png", _random_image(), metadata=metadata)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- atomic writes


def test_successful_writes_leave_no_temporary_files(tmp_path):
    for name, depth in [("a.png", 8), ("b.png", 16), ("c.jpg", 8)]:
        save_image(tmp_path / name, _random_image(), bit_depth=depth)
    save_image(tmp_path / "a.png", _random_image(seed=1))  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.jpg"]


def test_written_file_has_normal_permissions(tmp_path):
    path = save_image(tmp_path / "perm.png", _random_image())
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    os.chmod(path, 0o640)
    save_image(path, _random_image(seed=2))
    assert path.stat().st_mode & 0o777 == 0o640  # overwriting keeps the old file's mode


def _boom(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize(
    ("name", "bit_depth", "patch"),
    [
        ("out.png", 8, ("PIL.Image.Image.save", _boom)),
        ("out.jpg", 8, ("PIL.Image.Image.save", _boom)),
        ("out.png", 16, ("nst_jax.image_io._encode_png16", _boom)),
        ("out.png", 8, ("os.replace", _boom)),
        ("out.png", 8, ("os.fsync", _boom)),
    ],
)
def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, name, bit_depth, patch):
    target = tmp_path / name
    target.write_bytes(b"previous contents")
    (tmp_path / "other.txt").write_text("unrelated")
    monkeypatch.setattr(*patch)
    with pytest.raises(ImageError, match="no space left on device") as info:
        save_image(target, _random_image(), bit_depth=bit_depth)
    assert str(target) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "other.txt"])
    assert target.read_bytes() == b"previous contents"


def test_interrupted_write_leaves_no_temporary(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("PIL.Image.Image.save", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_image(tmp_path / "out.png", _random_image())
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bad paths


def test_missing_file(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(ImageError, match="no such file") as info:
        load_image(path)
    assert f"cannot read image '{path}'" in str(info.value)
    with pytest.raises(ImageError, match="no such file"):
        image_size(str(path))


def test_directory(tmp_path):
    with pytest.raises(ImageError, match="is a directory") as info:
        load_image(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("text.png", b"this is not an image\n", "not a recognised image format"),
        ("empty.png", b"", "file is empty"),
    ],
)
def test_not_an_image(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    for read in (load_image, image_size, read_png_metadata):
        with pytest.raises(ImageError, match=reason) as info:
            read(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_truncated_png(tmp_path, bit_depth):
    full = save_image(tmp_path / "full.png", _random_image(64, 64), bit_depth=bit_depth).read_bytes()
    path = tmp_path / "truncated.png"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ImageError, match="truncated") as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unsupported_source_type():
    with pytest.raises(ImageError, match="expected a path"):
        load_image(42)  # type: ignore[arg-type]


def test_save_rejects_bad_requests(tmp_path):
    image = _random_image()
    with pytest.raises(ImageError, match=r"unsupported suffix '\.bmp' \(supported: \.jpeg, \.jpg, \.png\)"):
        save_image(tmp_path / "out.bmp", image)
    with pytest.raises(ImageError, match="unsupported suffix"):
        save_image(tmp_path / "no_suffix", image)
    missing = tmp_path / "nowhere"
    with pytest.raises(ImageError, match=f"output directory '{missing}' does not exist"):
        save_image(missing / "out.png", image)
    with pytest.raises(ImageError, match="bit_depth=8"):
        save_image(tmp_path / "out.jpg", image, bit_depth=16)
    with pytest.raises(ImageError, match="bit_depth must be 8 or 16"):
        save_image(tmp_path / "out.png", image, bit_depth=12)
    with pytest.raises(ImageError, match="quality"):
        save_image(tmp_path / "out.jpg", image, quality=0)
    with pytest.raises(ImageError, match=r"\(H, W, 3\)"):
        save_image(tmp_path / "out.png", image[..., 0])
    with pytest.raises(ImageError, match="NaN"):
        save_image(tmp_path / "out.png", np.full((2, 2, 3), np.nan))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="is a directory"):
        save_image(tmp_path / "dir.png", image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.png"]


# --------------------------------------------------------------------------- resizing


def test_resize_keeps_dtype_range_and_shape():
    checker = (np.indices((32, 32)).sum(0) % 2).astype(np.float32)  # worst case for ringing
    image = np.stack([checker, 1 - checker, np.full_like(checker, 0.5)], -1)
    for height, width in [(16, 16), (64, 48), (7, 3), (1, 1)]:
        out = resize_image(image, height, width)
        assert out.shape == (height, width, 3) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_resize_downscale_is_antialiased():
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    out = resize_image(np.repeat(checker[..., None], 3, -1), 16, 16)
    np.testing.assert_allclose(out, 0.5, atol=0.02)  # a 1-px checkerboard averages to grey


def test_resize_preserves_constant_and_smooth_images():
    np.testing.assert_allclose(resize_image(np.full((10, 20, 3), 0.3, np.float32), 33, 7), 0.3, atol=1e-5)
    ramp = np.repeat(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], 3, -1).repeat(4, 0)
    out = resize_image(ramp, 4, 32)
    # Output pixel i is centred on input position 2 i + 0.5, where the ramp is (2 i + 0.5) / 63.
    expected = (2 * np.arange(32) + 0.5) / 63
    np.testing.assert_allclose(out[:, 2:-2], np.broadcast_to(expected[None, 2:-2, None], (4, 28, 3)), atol=1e-3)


def test_resize_same_size_is_a_clipped_copy():
    image = _random_image()
    out = resize_image(image, *image.shape[:2])
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)


def test_resize_accepts_uint8_and_2d():
    out = resize_image(np.full((4, 6), 255, np.uint8), 2, 3)
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0)


def test_resize_rejects_bad_arguments():
    image = _random_image()
    for args in [(0, 5), (5, -1), (2.5, 3), (True, 3)]:
        with pytest.raises(ValueError, match="positive integer"):
            resize_image(image, *args)
    with pytest.raises(ImageError, match="NaN"):
        resize_image(np.full((4, 4, 3), np.nan, np.float32), 2, 2)


def test_module_exports():
    for name in image_io.__all__:
        assert hasattr(image_io, name)
