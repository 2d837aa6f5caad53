"""Paints the example style images procedurally (numpy + Pillow only, fixed seeds).

    python examples/make_style.py            # writes examples/style.jpg and examples/style2.jpg
    python examples/make_style.py --out DIR  # writes them to DIR instead

``style.jpg``: short, thick brush strokes that follow a swirling flow field (a few vortices
plus smooth noise), in a night-sky palette of deep blues, teal, ochre and yellow; each
stroke is a bundle of bristle lines of slightly different shades.

``style2.jpg``: a mosaic of irregular tiles (a Voronoi diagram) in warm reds, oranges and
greens, with dark grout lines and a mottled glaze on every tile.

The same seed gives the same pixels; the JPEG bytes may differ between Pillow/libjpeg versions.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = (512, 384)  # width, height
SUPERSAMPLE = 2  # paint at 2x, then downsample with Lanczos for smooth stroke edges

NIGHT_PALETTE = np.array(
    [
        (12, 24, 74),  # deep ultramarine
        (22, 58, 140),  # cobalt
        (40, 110, 170),  # cerulean
        (70, 160, 160),  # teal
        (210, 190, 90),  # ochre
        (250, 220, 70),  # cadmium yellow
    ],
    dtype=np.float64,
)

MOSAIC_PALETTE = np.array(
    [
        (150, 30, 25),  # oxblood
        (200, 70, 30),  # vermilion
        (230, 140, 40),  # orange
        (240, 200, 110),  # sand
        (60, 110, 60),  # olive green
        (30, 70, 90),  # slate blue
    ],
    dtype=np.float64,
)


def smooth_noise(rng: np.random.Generator, height: int, width: int, waves: int = 12) -> np.ndarray:
    """Returns a smooth random field in [0, 1] made of a few random plane waves."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    field = np.zeros((height, width))
    for _ in range(waves):
        freq = rng.uniform(0.5, 4.0)
        angle = rng.uniform(0, 2 * np.pi)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + phase) / freq
    return (field - field.min()) / (field.max() - field.min())


def palette_lookup(palette: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Maps values in [0, 1] to colours by linear interpolation along a palette."""
    position = np.clip(t, 0, 1) * (len(palette) - 1)
    low = np.floor(position).astype(int).clip(0, len(palette) - 2)
    frac = (position - low)[..., None]
    return palette[low] * (1 - frac) + palette[low + 1] * frac


def flow_angle(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Returns a swirling direction field: vortices around a few centres plus gentle noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    vx = np.zeros((height, width))
    vy = np.zeros((height, width))
    for _ in range(5):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        strength = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.4)
        radius = rng.uniform(0.12, 0.3) * max(height, width)
        dx, dy = x - cx, y - cy
        falloff = strength * np.exp(-(dx**2 + dy**2) / (2 * radius**2))
        vx += -dy / radius * falloff  # rotation around the centre
        vy += dx / radius * falloff
    vx += 0.35  # a prevailing left-to-right wind
    noise = smooth_noise(rng, height, width, waves=6)
    return np.arctan2(vy, vx) + (noise - 0.5) * 0.8


def paint_swirls(seed: int = 1889) -> Image.Image:
    """Paints brush strokes along a swirling flow field in a night-sky palette."""
    rng = np.random.default_rng(seed)
    width, height = SIZE[0] * SUPERSAMPLE, SIZE[1] * SUPERSAMPLE
    tone = smooth_noise(rng, height, width)
    # Brighter towards a few "stars", darker towards the bottom.
    y, x = np.mgrid[0:height, 0:width]
    for _ in range(4):
        sx, sy = rng.uniform(0, width), rng.uniform(0, height * 0.6)
        tone += 0.6 * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / (2 * (0.05 * width) ** 2))
    tone -= 0.25 * (y / height)
    tone = (tone - tone.min()) / (tone.max() - tone.min())
    colours = palette_lookup(NIGHT_PALETTE, tone)
    angle = flow_angle(rng, height, width)

    canvas = Image.fromarray(np.uint8(palette_lookup(NIGHT_PALETTE, tone * 0.6)), "RGB")
    canvas = canvas.filter(ImageFilter.GaussianBlur(8))
    draw = ImageDraw.Draw(canvas)
    step = 3.0 * SUPERSAMPLE
    for _ in range(9000):
        px, py = rng.uniform(0, width), rng.uniform(0, height)
        base = colours[int(py), int(px)] * rng.uniform(0.85, 1.15)
        points = [(px, py)]
        for _ in range(int(rng.integers(4, 10))):
            theta = angle[int(py) % height, int(px) % width]
            px, py = px + step * np.cos(theta), py + step * np.sin(theta)
            points.append((px, py))
        thickness = float(rng.uniform(2.5, 5.0)) * SUPERSAMPLE
        normal = np.array([-np.sin(theta), np.cos(theta)])
        for offset in np.linspace(-thickness / 2, thickness / 2, 4):  # bristles
            shade = np.clip(base * rng.uniform(0.8, 1.2) + rng.normal(0, 8, 3), 0, 255)
            shifted = [(qx + offset * normal[0], qy + offset * normal[1]) for qx, qy in points]
            draw.line(shifted, fill=tuple(int(v) for v in shade), width=max(1, int(thickness / 3)), joint="curve")
    return canvas.resize(SIZE, Image.Resampling.LANCZOS)


def paint_mosaic(seed: int = 1455, tiles: int = 420) -> Image.Image:
    """Paints a mosaic of irregular glazed tiles with dark grout lines."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    seeds = np.column_stack([rng.uniform(0, width, tiles), rng.uniform(0, height, tiles)])
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.column_stack([x.ravel(), y.ravel()])
    nearest = np.empty(len(pixels), int)
    gap = np.empty(len(pixels))
    for start in range(0, len(pixels), 16384):  # chunked brute-force nearest two seeds
        chunk = pixels[start : start + 16384]
        dist = np.sqrt(((chunk[:, None, :] - seeds[None, :, :]) ** 2).sum(-1))
        order = np.argpartition(dist, 1, axis=1)[:, :2]
        d0 = np.take_along_axis(dist, order, axis=1)
        rows = np.arange(len(chunk))
        first = np.where(d0[:, 0] <= d0[:, 1], 0, 1)
        near, near2 = order[rows, first], order[rows, 1 - first]
        nearest[start : start + len(chunk)] = near
        # Distance to the border between the two nearest tiles (the bisector of their seeds).
        spacing = np.linalg.norm(seeds[near2] - seeds[near], axis=1)
        gap[start : start + len(chunk)] = np.abs(d0[:, 1] ** 2 - d0[:, 0] ** 2) / (2 * spacing)
    nearest = nearest.reshape(height, width)
    gap = gap.reshape(height, width)

    # Tile colours follow a large-scale pattern so the mosaic has structure, plus per-tile jitter.
    pattern = smooth_noise(rng, height, width, waves=8)
    tile_tone = pattern[seeds[:, 1].astype(int), seeds[:, 0].astype(int)] + rng.normal(0, 0.08, tiles)
    tile_tone = np.argsort(np.argsort(tile_tone)) / (tiles - 1)  # use the whole palette evenly
    tile_colour = palette_lookup(MOSAIC_PALETTE, tile_tone)
    image = tile_colour[nearest]
    glaze = smooth_noise(rng, height, width, waves=40)  # mottled glaze, finer than the tiles
    image *= (0.8 + 0.4 * glaze)[..., None]
    image *= (1 + rng.normal(0, 0.04, (height, width)))[..., None]
    grout = np.clip((gap - 0.6) / 1.2, 0, 1)[..., None]  # 0 on tile borders, 1 inside
    image = image * grout + np.array([35, 28, 22]) * (1 - grout)
    return Image.fromarray(np.uint8(np.clip(image, 0, 255)), "RGB").filter(ImageFilter.SMOOTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent)
    args = parser.parse_args()
    paint_swirls().save(args.out / "style.jpg", quality=90, subsampling=0)
    paint_mosaic().save(args.out / "style2.jpg", quality=90, subsampling=0)


if __name__ == "__main__":
    main()
