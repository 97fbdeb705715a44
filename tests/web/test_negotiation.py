"""Content negotiation of error pages: ``Accept`` q-values (RFC 9110 §12.5.1) decide
between an HTML page and problem+json."""

from __future__ import annotations

import pytest

from updog.web.problem_pages import media_quality, prefers_html

CHROMIUM = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (CHROMIUM, True),
        ("text/html", True),
        ("TEXT/HTML", True),
        ("text/*", True),
        ("*/*;q=0.8, text/html", True),
        ("application/json;q=0, text/html;q=0.1", True),
        ("application/*;q=0.2, text/html;q=0.3", True),
        (None, False),  # no Accept: anything, and a tie goes to JSON
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/problem+json", False),
        ("text/html, application/json", False),  # a tie
        ("text/html;q=0.5, application/json", False),
        ("text/html;q=0.9, */*", False),
        ("application/problem+json;q=0.9, text/html;q=0.8, application/json;q=0.1", False),
        ("text/html;q=0", False),
        ("text/html;level=1", False),  # matches only HTML with level=1
        ("text/html;q=2", False),  # an invalid weight: the range is ignored
        ("text/html;q=0.0001", False),
        ("html", False),  # not a media range
    ],
)
def test_prefers_html(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html


def test_most_specific_range_decides_the_quality() -> None:
    accept = "text/*;q=0.5, text/html;q=0.7, */*;q=0.1, text/html;level=1;q=0.9"
    assert media_quality(accept, "text/html") == 0.7
    assert media_quality(accept, "text/plain") == 0.5
    assert media_quality(accept, "application/json") == 0.1
    assert media_quality("text/html", "application/json") == 0.0
    assert media_quality(None, "application/json") == 1.0
    assert media_quality("text/html; q=0.25 ", "text/html") == 0.25
