"""The HTML error page in Chromium: axe-core finds no serious or critical violation, no
Content-Security-Policy violation is reported, and nothing scrolls sideways, at both widths."""

from __future__ import annotations

from typing import Any

import pytest
from web_support import WIDTHS, CspWatch, check_axe

pytestmark = [pytest.mark.db, pytest.mark.browser]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("path", "status"),
    [("/nowhere/<b>x</b>", 404), ("/api/v1/funds?limit=many", 401)],
)
def test_error_page(web: Any, browser: Any, path: str, status: int, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    csp = CspWatch(page)
    try:
        response = page.goto(web.url + path, wait_until="load")
        assert response is not None and response.status == status
        assert response.headers["content-type"].startswith("text/html")
        assert page.title().endswith("· Updog")
        check_axe(page, f"error {status} at {width} px")
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the error page scrolls sideways by {overflow} px at {width} px"
        assert csp.messages == []
    finally:
        context.close()
