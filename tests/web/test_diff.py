"""The screenshot comparison: anti-aliasing and one-pixel glyph shifts pass, a moved block
or a changed page size fails."""

from __future__ import annotations

from PIL import Image, ImageDraw
from web_support import compare


def _page(block_x: int, text_dx: int = 0, height: int = 400) -> Image.Image:
    image = Image.new("RGB", (400, height), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((block_x, 50, block_x + 120, 110), fill="#1f4e79")
    for i in range(8):
        draw.text((20 + text_dx, 150 + 20 * i), f"Line {i}: paid-in $33,656,483", fill="black")
    return image


def test_anti_aliasing_passes() -> None:
    ok, why, _ = compare(_page(40), _page(40, text_dx=1))
    assert ok, why


def test_moved_block_fails() -> None:
    ok, why, _ = compare(_page(40), _page(60))
    assert not ok, why


def test_changed_size_fails() -> None:
    ok, why, _ = compare(_page(40), _page(40, height=420))
    assert not ok and "size" in why
