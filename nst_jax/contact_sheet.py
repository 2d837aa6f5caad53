"""Contact sheets: images laid out in a grid, each above its caption, as one RGB float image.

Captions use Pillow's default font (its scalable FreeType font where Pillow has one, else its small bitmap
font). A character the font has no glyph for is written out (``α`` -> ``alpha``) instead of drawn as a box.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

# Spelled-out forms of characters the default font may lack.
FALLBACK_TEXT: dict[str, str] = {"α": "alpha", "β": "beta"}
_MISSING = "\U000f0000"  # a private-use code point: no font draws it, so it renders as the "missing" glyph
_SPACING = 2  # pixels between caption lines


@dataclasses.dataclass(frozen=True)
class SheetLayout:
    """Where things go on a sheet: a ``rows`` x ``columns`` grid of cells (image above caption), ``gap`` apart."""

    rows: int
    columns: int
    cell_height: int
    cell_width: int
    caption_height: int
    gap: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, 3) of the whole sheet."""
        return (
            self.rows * (self.cell_height + self.caption_height) + (self.rows + 1) * self.gap,
            self.columns * self.cell_width + (self.columns + 1) * self.gap,
            3,
        )

    def origin(self, index: int) -> tuple[int, int]:
        """(top, left) of cell ``index`` (row-major); its caption starts ``cell_height`` below."""
        row, column = divmod(index, self.columns)
        return (
            self.gap + row * (self.cell_height + self.caption_height + self.gap),
            self.gap + column * (self.cell_width + self.gap),
        )


def default_font(size: int) -> Font:
    """Pillow's default font at ``size`` pixels (its fixed-size bitmap font where it cannot scale)."""
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def caption_font_size(tile_width: int) -> int:
    """A caption size readable next to tiles ``tile_width`` pixels wide: 11 px for small tiles, up to 24 px."""
    return max(11, min(24, tile_width // 20))


def _has_glyph(font: Font, character: str) -> bool:
    """Whether ``font`` draws ``character`` with a glyph of its own."""
    try:
        mask = font.getmask(character)
    except UnicodeEncodeError:  # bitmap fonts cover Latin-1 only
        return False
    if not isinstance(font, ImageFont.FreeTypeFont):
        return True
    missing = font.getmask(_MISSING)
    return mask.size != missing.size or bytes(mask) != bytes(missing)


def drawable_text(text: str, font: Font) -> str:
    """``text`` with every character ``font`` lacks spelled out (``FALLBACK_TEXT``) or replaced by ``?``."""
    return "".join(
        character if character.isspace() or _has_glyph(font, character) else FALLBACK_TEXT.get(character, "?")
        for character in text
    )


def _text_size(text: str, font: Font) -> tuple[int, int]:
    """(width, height) of ``text`` (lines split at newlines) drawn from the origin."""
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=_SPACING)
    return math.ceil(right - min(left, 0)), math.ceil(bottom - min(top, 0))


def sheet_layout(
    shapes: Sequence[tuple[int, ...]], captions: Sequence[str], *, columns: int | None, font: Font, gap: int
) -> SheetLayout:
    """The layout fitting images of ``shapes`` and their (drawable) ``captions``; columns default to ~sqrt(n)."""
    if not shapes:
        raise ValueError("a contact sheet needs at least one image")
    if len(captions) != len(shapes):
        raise ValueError(f"{len(captions)} labels for {len(shapes)} images; give one label per image")
    columns = math.ceil(math.sqrt(len(shapes))) if columns is None else columns
    if columns < 1:
        raise ValueError(f"columns must be a positive integer, got {columns}")
    columns = min(columns, len(shapes))
    text = [_text_size(caption, font) if caption else (0, 0) for caption in captions]
    pad = max(2, gap // 2)
    caption_height = max(height for _, height in text) + 2 * pad
    cell_width = max(max(shape[1] for shape in shapes), max(width for width, _ in text) + 2 * pad)
    cell_height = max(shape[0] for shape in shapes)
    return SheetLayout(math.ceil(len(shapes) / columns), columns, cell_height, cell_width, caption_height, gap)


def contact_sheet(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    columns: int | None = None,
    font_size: int | None = None,
    gap: int = 6,
    background: float = 1.0,
    ink: float = 0.0,
) -> np.ndarray:
    """The ``images`` (H, W, 3) in [0, 1] in a grid, each centred in its cell above its label: (H, W, 3) float32."""
    arrays = [np.clip(np.asarray(image, np.float32), 0.0, 1.0) for image in images]
    for index, array in enumerate(arrays):
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"image {index} has shape {array.shape}; expected (H, W, 3)")
    font = default_font(font_size or caption_font_size(max((a.shape[1] for a in arrays), default=0)))
    captions = [drawable_text(label, font) for label in labels]
    layout = sheet_layout([a.shape for a in arrays], captions, columns=columns, font=font, gap=gap)
    sheet = np.full(layout.shape, background, np.float32)
    for index, (array, caption) in enumerate(zip(arrays, captions)):
        top, left = layout.origin(index)
        height, width = array.shape[:2]
        y, x = top + (layout.cell_height - height) // 2, left + (layout.cell_width - width) // 2
        sheet[y : y + height, x : x + width] = array
        below = top + layout.cell_height
        strip = sheet[below : below + layout.caption_height, left : left + layout.cell_width]
        coverage = _caption_mask(caption, font, layout.cell_width, layout.caption_height)
        strip[:] = strip * (1.0 - coverage) + ink * coverage
    return sheet


def _caption_mask(caption: str, font: Font, width: int, height: int) -> np.ndarray:
    """Ink coverage (height, width, 1) in [0, 1] of ``caption`` centred in a strip of that size."""
    mask = Image.new("L", (width, height), 0)
    if caption:
        text_width, text_height = _text_size(caption, font)
        origin = ((width - text_width) // 2, (height - text_height) // 2)
        ImageDraw.Draw(mask).multiline_text(origin, caption, fill=255, font=font, spacing=_SPACING, align="center")
    return (np.asarray(mask, np.float32) / 255.0)[..., None]
