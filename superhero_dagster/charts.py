"""A small scatter plot rendered straight to PNG bytes (numpy raster + zlib), for asset metadata.

Why not matplotlib: it would add a heavy dependency tree (Pillow, fonttools, kiwisolver, ...) to
draw one chart; Dagster's UI shows any PNG embedded as a markdown data URI, and a plain raster
with tick labels in a tiny built-in bitmap font is enough to read a trend. Axis titles and the
legend go in the markdown next to the image, where the UI renders real text. The output is
deterministic (same points, same bytes).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WIDTH, HEIGHT = 640, 400
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 24, 12, 30
_SCALE = 2  # font pixels per glyph pixel

#: 3x5 glyphs, one string of 15 bits (rows top to bottom) per character.
_GLYPHS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001010010010",
    "8": "111101111101111",
    "9": "111101111001111",
    "%": "101001010100101",
    "k": "100101110101101",
    "M": "101111111101101",
    ".": "000000000000010",
}

WHITE, GRID, AXIS = (255, 255, 255), (225, 225, 225), (60, 60, 60)
POINT, HIGHLIGHT, CHANCE = (31, 119, 180), (230, 110, 20), (200, 40, 40)


@dataclass(frozen=True)
class Point:
    x: float  # > 0 (log scale)
    y: float  # 0..1
    weight: float  # >= 0, drawn as dot area
    highlight: bool = False


def _blend(view: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], alpha: float) -> None:
    view[mask] = (view[mask] * (1 - alpha) + np.array(color) * alpha).astype(np.uint8)


def _text(img: np.ndarray, x: int, y: int, text: str, color: tuple[int, int, int]) -> None:
    """Draw ``text`` with its top-left corner at (x, y); unknown characters leave a gap."""
    for i, char in enumerate(text):
        bits = _GLYPHS.get(char)
        if bits is None:
            continue
        for k, bit in enumerate(bits):
            if bit == "1":
                px = x + (i * 4 + k % 3) * _SCALE
                py = y + (k // 3) * _SCALE
                img[py : py + _SCALE, px : px + _SCALE] = color


def _text_width(text: str) -> int:
    return (len(text) * 4 - 1) * _SCALE


def _count_label(value: float) -> str:
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def encode_png(img: np.ndarray) -> bytes:
    """RGB uint8 array (H, W, 3) -> PNG file bytes."""
    height, width, _ = img.shape
    raw = np.zeros((height, width * 3 + 1), dtype=np.uint8)  # filter byte 0 on every row
    raw[:, 1:] = img.reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def scatter_png(points: Sequence[Point], *, chance: float | None = None) -> bytes:
    """x on a log scale (decades labelled 1, 10, ..., 1k, 1M), y as a share 0..100%; dot area
    grows with ``weight``; ``chance`` draws a dashed horizontal reference line."""
    img = np.full((HEIGHT, WIDTH, 3), WHITE, dtype=np.uint8)
    x0, x1, y0, y1 = _LEFT, WIDTH - _RIGHT, _TOP, HEIGHT - _BOTTOM
    xs = [p.x for p in points if p.x > 0]
    lo = math.floor(math.log10(min(xs))) if xs else 0
    hi = math.ceil(math.log10(max(xs))) if xs else 1
    hi = max(hi, lo + 1)

    def px(x: float) -> int:
        return round(x0 + (math.log10(x) - lo) / (hi - lo) * (x1 - x0))

    def py(y: float) -> int:
        return round(y1 - min(max(y, 0.0), 1.0) * (y1 - y0))

    for q in range(5):
        row = py(q / 4)
        img[row, x0:x1] = GRID
        label = f"{q * 25}%"
        _text(img, x0 - 6 - _text_width(label), row - 5, label, AXIS)
    for decade in range(lo, hi + 1):
        col = px(10.0**decade)
        img[y0:y1, col] = GRID
        label = _count_label(10.0**decade)
        _text(img, col - _text_width(label) // 2, y1 + 8, label, AXIS)
    img[y0 : y1 + 1, x0] = AXIS
    img[y1, x0 : x1 + 1] = AXIS
    if chance is not None and 0 <= chance <= 1:
        row = py(chance)
        for col in range(x0, x1, 8):
            img[row - 1 : row + 1, col : col + 5] = CHANCE

    heaviest = max((p.weight for p in points), default=1.0) or 1.0
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    # Plain dots first, highlighted ones on top.
    for p in sorted(points, key=lambda p: (p.highlight, -p.weight)):
        if p.x <= 0:
            continue
        radius = 2.0 + 6.0 * math.sqrt(max(p.weight, 0.0) / heaviest)
        cx, cy = px(p.x), py(p.y)
        r = math.ceil(radius)
        box = (slice(max(cy - r, 0), cy + r + 1), slice(max(cx - r, 0), cx + r + 1))
        mask = (yy[box] - cy) ** 2 + (xx[box] - cx) ** 2 <= radius**2
        _blend(img[box], mask, HIGHLIGHT if p.highlight else POINT, 0.85 if p.highlight else 0.45)
    return encode_png(img)
