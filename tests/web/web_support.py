"""Helpers of the browser tests (imported as ``web_support``; fixtures are in conftest.py).

* :func:`launch` starts Debian's Chromium (``/usr/bin/chromium``; Playwright cannot download
  a browser here) with flags that keep rendering stable (no GPU, no font hinting, sRGB).
* :func:`check_screenshot` compares a full-page screenshot with its committed baseline under
  ``tests/web/baselines/``: a pixel counts as changed only if no pixel within one pixel of it
  in the other image is close in colour (so anti-aliasing and sub-pixel glyph shifts do not
  count) and the test fails when more than :data:`MAX_CHANGED_RATIO` of the pixels changed
  or the page size differs (a changed layout). ``UPDOG_REFRESH_BASELINES=1`` (see
  ``scripts/refresh-baselines``) rewrites the baselines and records the Chromium version in
  ``baselines/CHROMIUM_VERSION``.
* :func:`check_axe` runs axe-core (shipped inside ``axe-playwright-python``) and fails on any
  serious or critical violation.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from updog.store import repositories as repo

HERE = Path(__file__).resolve().parent
BASELINES = HERE / "baselines"
VERSION_FILE = BASELINES / "CHROMIUM_VERSION"
ARTIFACTS = Path(os.environ.get("UPDOG_WEB_ARTIFACTS", Path(tempfile.gettempdir()) / "updog-web"))
CHROMIUM = os.environ.get("UPDOG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--font-render-hinting=none",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
    "--disable-lcd-text",
]
#: The font the stylesheet names, from the Debian package fonts-dejavu-core.
FONT_FILE = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
#: Colour distance (max over channels, 0..255) under which two pixels are "the same".
COLOUR_TOLERANCE = 40
#: Share of changed pixels above which a screenshot fails (plus a small absolute floor).
MAX_CHANGED_RATIO = 0.0005
MIN_CHANGED_PIXELS = 150
WIDTHS = (1280, 390)


def refreshing() -> bool:
    return os.environ.get("UPDOG_REFRESH_BASELINES") == "1"


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def _covered(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per pixel of ``x``: is some pixel of ``y`` within one pixel of it close in colour?"""
    h, w, _ = x.shape
    padded = np.pad(y, ((1, 1), (1, 1), (0, 0)), mode="edge")
    ok = np.zeros((h, w), dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            near = np.abs(x - padded[dy : dy + h, dx : dx + w]).max(axis=2)
            ok |= near <= COLOUR_TOLERANCE
    return ok


def changed_pixels(a: Image.Image, b: Image.Image) -> np.ndarray:
    """Boolean mask of the pixels that differ beyond anti-aliasing (images of one size)."""
    x = np.asarray(a.convert("RGB"), dtype=np.int16)
    y = np.asarray(b.convert("RGB"), dtype=np.int16)
    changed = np.zeros(x.shape[:2], dtype=bool)
    rows = np.flatnonzero((np.abs(x - y).max(axis=2) > COLOUR_TOLERANCE).any(axis=1))
    if rows.size == 0:  # the usual case: nothing differs beyond the tolerance
        return changed
    top, bottom = max(0, int(rows[0]) - 1), min(x.shape[0], int(rows[-1]) + 2)
    xs, ys = x[top:bottom], y[top:bottom]
    changed[top:bottom] = ~(_covered(xs, ys) & _covered(ys, xs))
    return changed


def compare(baseline: Image.Image, actual: Image.Image) -> tuple[bool, str, np.ndarray | None]:
    """(same?, explanation, changed mask) for two screenshots."""
    if baseline.size != actual.size:
        return False, f"size changed from {baseline.size} to {actual.size}", None
    mask = changed_pixels(baseline, actual)
    count = int(mask.sum())
    limit = max(MIN_CHANGED_PIXELS, int(MAX_CHANGED_RATIO * mask.size))
    ok = count <= limit
    return ok, f"{count} changed pixels (limit {limit})", mask


def check_screenshot(
    page: Any, name: str, browser_version: str, mask: list[Any] | None = None
) -> None:
    """Full-page screenshot of ``page`` against ``baselines/<name>.png``."""
    png = page.screenshot(
        full_page=True, mask=mask or [], mask_color="#ff00ff", animations="disabled", caret="hide"
    )
    path = BASELINES / f"{name}.png"
    if refreshing():
        BASELINES.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        VERSION_FILE.write_text(browser_version + "\n")
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    actual_path = ARTIFACTS / f"{name}.actual.png"
    actual_path.write_bytes(png)
    if not path.exists():
        raise AssertionError(
            f"no baseline {path.name}; run scripts/refresh-baselines (actual: {actual_path})"
        )
    recorded = VERSION_FILE.read_text().strip() if VERSION_FILE.exists() else "unknown"
    with Image.open(path) as baseline, Image.open(actual_path) as actual:
        ok, why, changed = compare(baseline, actual)
        if ok:
            return
        if changed is not None:
            overlay = np.asarray(actual.convert("RGB")).copy()
            overlay[changed] = (255, 0, 255)
            Image.fromarray(overlay).save(ARTIFACTS / f"{name}.diff.png")
    raise AssertionError(
        f"screenshot {name} differs from its baseline: {why}. Baseline made with {recorded}, "
        f"this run uses {browser_version}. Actual and diff images in {ARTIFACTS}; if the "
        "change is intended, run scripts/refresh-baselines and commit the new baselines."
    )


SERIOUS = ("serious", "critical")


def check_axe(page: Any, label: str) -> None:
    """axe-core on the current page: no serious or critical violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in SERIOUS]
    if bad:
        lines = [
            f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(n["target"][0] if n.get("target") else "?" for n in v["nodes"][:5])
            for v in bad
        ]
        raise AssertionError(f"axe on {label}: " + "\n".join(lines))


class CspWatch:
    """Collects Content-Security-Policy violations reported on a page's console."""

    def __init__(self, page: Any) -> None:
        self.messages: list[str] = []
        page.on("console", self._on_console)

    def _on_console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.messages.append(text)


PASSWORD = "correct horse battery staple"


@dataclass
class WebUser:
    email: str
    password: str
    org_id: uuid.UUID
    user_id: uuid.UUID


def create_user(
    database: Any, email: str, role: str = "analyst", org: str = "Example Ventures"
) -> WebUser:
    with database.connection() as conn:
        organisation = repo.get_or_create_organisation(conn, org)
        user = repo.create_user(conn, organisation.id, email, PASSWORD, role)  # type: ignore[arg-type]
    return WebUser(email, PASSWORD, organisation.id, user.id)


def sign_in(page: Any, base_url: str, user: WebUser) -> None:
    page.goto(f"{base_url}/sign-in")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/funds")
