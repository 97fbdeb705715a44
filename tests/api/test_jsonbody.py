"""The JSON guards alone (no server): media types, parse errors, every rejected value with
its JSON Pointer (RFC 6901)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from updog.http.bodies import check_media_type, parse_json
from updog.http.problems import ProblemError, pointer, pydantic_field_errors


def rejected(raw: bytes | str, **kw: Any) -> ProblemError:
    with pytest.raises(ProblemError) as info:
        parse_json(raw.encode() if isinstance(raw, str) else raw, **kw)
    return info.value


@pytest.mark.parametrize(
    "tokens,expected",
    [
        ([], ""),
        (["foo"], "/foo"),
        (["foo", 0], "/foo/0"),
        (["a/b"], "/a~1b"),
        (["m~n"], "/m~0n"),
        ([""], "/"),
        (["~/"], "/~0~1"),
    ],
)
def test_pointer_escaping(tokens: list[Any], expected: str) -> None:
    assert pointer(tokens) == expected  # RFC 6901 §5 examples


def test_accepts_plain_documents() -> None:
    doc = {"a": [1, 2.5, -3e10, True, None, "ü"], "b": {"c": ""}}
    assert parse_json(json.dumps(doc).encode()) == doc
    assert parse_json("\ufeff{}".encode()) == {}


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; charset=UTF-8",
        "application/problem+json",
        'application/json; charset="utf-8"',
    ],
)
def test_media_types_accepted(ctype: str) -> None:
    check_media_type(ctype)


@pytest.mark.parametrize(
    "ctype", [None, "", "text/json", "application/jsonx", "application/json; charset=utf-16"]
)
def test_media_types_refused(ctype: str | None) -> None:
    with pytest.raises(ProblemError) as info:
        check_media_type(ctype)
    assert info.value.status == 415 and info.value.code == "UNSUPPORTED_MEDIA_TYPE"


def test_every_rejected_value_is_reported_with_its_path() -> None:
    raw = '{"a": NaN, "b": [1, Infinity, {"c\\u0000": "d\\u0000"}], "e": -Infinity, "f": 1e999}'
    exc = rejected(raw)
    assert exc.status == 422 and exc.code == "INVALID_JSON_VALUES"
    got = {(e["path"], e["code"]) for e in exc.errors}
    assert got == {
        ("/a", "NON_FINITE_NUMBER"),
        ("/b/1", "NON_FINITE_NUMBER"),
        ("/b/2/c\x00", "NUL_IN_STRING"),
        ("/e", "NON_FINITE_NUMBER"),
        ("/f", "NON_FINITE_NUMBER"),
    }


def test_depth_and_size_limits() -> None:
    assert rejected("[" * 65 + "]" * 65).code == "NESTING_TOO_DEEP"
    assert parse_json(("[" * 64 + "]" * 64).encode()) is not None
    assert rejected("[" * 100_000 + "]" * 100_000).code == "NESTING_TOO_DEEP"
    exc = rejected(json.dumps({"x": list(range(11))}), max_items=10)
    assert exc.code == "LIST_TOO_LONG" and exc.errors[0]["path"] == "/x"
    assert rejected(json.dumps({str(i): i for i in range(11)}), max_items=10).code == (
        "LIST_TOO_LONG"
    )


def test_duplicate_keys() -> None:
    exc = rejected('{"fund_size": 1, "nested": {"a": 1, "a": 2}, "fund_size": -1}')
    assert {e["path"] for e in exc.errors} == {"/fund_size", "/nested/a"}
    assert exc.code == "DUPLICATE_KEY"


def test_error_cap() -> None:
    exc = rejected("[" + ",".join(["NaN"] * 1000) + "]")
    assert len(exc.errors) == 100


@pytest.mark.parametrize("raw", [b"", b"  \n", b"\xc3\x28", b"{", b"[1,]", b"'a'", b"nul"])
def test_malformed_is_400(raw: bytes) -> None:
    exc = rejected(raw)
    assert exc.status == 400 and exc.code == "INVALID_JSON"


def test_pydantic_locations_become_pointers() -> None:
    errors = pydantic_field_errors(
        [
            {
                "loc": ("body", "stages", 2, "graduation_rate"),
                "type": "less_than_equal",
                "msg": "m",
            },
            {"loc": ("query", "limit"), "type": "greater_than_equal", "msg": "m"},
            {"loc": ("body", "function-after[check()]", "a/b"), "type": "value_error", "msg": "m"},
        ]
    )
    assert [e["path"] for e in errors] == ["/stages/2/graduation_rate", "/query/limit", "/a~1b"]
    assert errors[0]["code"] == "OUT_OF_RANGE"
