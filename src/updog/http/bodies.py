"""Guarded JSON request bodies: the checks that run *before* any model validation.

:func:`read_json` reads the raw body (already capped in bytes by
:class:`~updog.http.body_limit.BodyLimitMiddleware`) and returns the parsed
value, or raises :class:`~updog.http.problems.ProblemError`:

=====  ==========================  ===================================================
415    ``UNSUPPORTED_MEDIA_TYPE``  ``Content-Type`` is not ``application/json`` (UTF-8)
400    ``INVALID_JSON``            empty body, bytes that are not UTF-8, malformed JSON
422    ``NON_FINITE_NUMBER``       ``NaN``, ``Infinity``, ``-Infinity``, or a number
                                   that overflows a float (``1e999``); path to it
422    ``NUMBER_TOO_LONG``         an integer literal of more than 64 digits
422    ``NUL_IN_STRING``           U+0000 in any string or object key; path to it
422    ``NESTING_TOO_DEEP``        arrays/objects nested deeper than ``max_depth``
422    ``LIST_TOO_LONG``           an array (or object) with more than ``max_items``
                                   members; path to it
422    ``DUPLICATE_KEY``           an object naming the same member twice (parsers
                                   disagree on which one wins); path to it
=====  ==========================  ===================================================

All 422 problems list every offending location in ``errors[]`` (JSON Pointers, RFC 6901),
up to :data:`MAX_REPORTED_ERRORS`. The standard library parser is used with hooks, so the
numbers are checked as they are parsed; the walk over the result is iterative (no
recursion), and a document too deep for the parser's own recursion guard is reported as
``NESTING_TOO_DEEP`` rather than crashing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request

from updog.http.problems import MAX_REPORTED_ERRORS, FieldError, ProblemError, pointer

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_ITEMS = 10_000
MAX_INT_DIGITS = 64


class _Bad:
    """Placeholder left in the parsed tree where a literal was rejected."""

    __slots__ = ("code", "text")

    def __init__(self, code: str, text: str) -> None:
        self.code = code
        self.text = text


def _parse_float(text: str) -> float | _Bad:
    value = float(text)
    if not math.isfinite(value):
        return _Bad("NON_FINITE_NUMBER", text)
    return value


def _parse_int(text: str) -> int | _Bad:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _Bad("NUMBER_TOO_LONG", text[:20] + "...")
    return int(text)


def _parse_constant(text: str) -> _Bad:
    return _Bad("NON_FINITE_NUMBER", text)


class _DupDict(dict[str, Any]):
    """An object whose members included repeated keys (kept: the last value, as ``json``)."""

    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[str] = set()
    dups: list[str] = []
    for key, _ in pairs:
        if key in seen and key not in dups:
            dups.append(key)
        seen.add(key)
    flagged = _DupDict(result)
    flagged.duplicates = dups
    return flagged


def _bad_message(bad: _Bad) -> str:
    if bad.code == "NON_FINITE_NUMBER":
        return f"Numbers must be finite; got {bad.text}."
    return f"Integer literal longer than {MAX_INT_DIGITS} digits."


def check_media_type(content_type: str | None) -> None:
    """Accept ``application/json`` (or ``application/*+json``) with no charset or UTF-8.

    Raises ``ProblemError(415, "UNSUPPORTED_MEDIA_TYPE")`` otherwise.
    """
    if not content_type:
        raise ProblemError(
            415, "UNSUPPORTED_MEDIA_TYPE", "A JSON body needs Content-Type: application/json."
        )
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    ok = media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if not ok or charset not in (None, "utf-8", "utf8"):
        raise ProblemError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"Content-Type {content_type!r} is not supported; send application/json (UTF-8).",
        )


def parse_json(
    raw: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> Any:
    """Parse ``raw`` (UTF-8 JSON) with every guard of this module; see the table above."""
    if not raw.strip():
        raise ProblemError(
            400, "INVALID_JSON", "The request body is empty; a JSON document is required."
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemError(
            400, "INVALID_JSON", f"The body is not valid UTF-8 (byte offset {exc.start})."
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(
            text,
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_parse_constant,
            object_pairs_hook=_object_pairs,
        )
    except RecursionError:
        raise ProblemError(
            422,
            "NESTING_TOO_DEEP",
            f"JSON nested deeper than {max_depth} levels.",
            errors=[FieldError("", "NESTING_TOO_DEEP", f"Nesting exceeds {max_depth} levels.")],
        ) from None
    except json.JSONDecodeError as exc:
        raise ProblemError(
            400,
            "INVALID_JSON",
            f"Malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
        ) from None
    except ValueError:
        raise ProblemError(400, "INVALID_JSON", "Malformed JSON.") from None
    errors = _walk(value, max_depth=max_depth, max_items=max_items)
    if errors:
        codes = sorted({e.code for e in errors})
        code = codes[0] if len(codes) == 1 else "INVALID_JSON_VALUES"
        raise ProblemError(
            422,
            code,
            f"The JSON document has {len(errors)} rejected value(s); see errors[].",
            errors=errors,
        )
    return value


def _walk(root: Any, *, max_depth: int, max_items: int) -> list[FieldError]:
    """Depth-first, iterative check of the parsed tree; returns at most MAX_REPORTED_ERRORS."""
    errors: list[FieldError] = []
    # (value, path tokens, depth of the container the value sits in)
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(root, (), 0)]
    while stack and len(errors) < MAX_REPORTED_ERRORS:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                errors.append(
                    FieldError(
                        pointer(path), "NUL_IN_STRING", "Strings must not contain NUL (U+0000)."
                    )
                )
        elif isinstance(value, _Bad):
            errors.append(FieldError(pointer(path), value.code, _bad_message(value)))
        elif isinstance(value, dict | list):
            if depth + 1 > max_depth:
                errors.append(
                    FieldError(
                        pointer(path), "NESTING_TOO_DEEP", f"Nesting exceeds {max_depth} levels."
                    )
                )
                continue
            if len(value) > max_items:
                errors.append(
                    FieldError(
                        pointer(path),
                        "LIST_TOO_LONG",
                        f"At most {max_items} members are allowed; got {len(value)}.",
                    )
                )
                continue
            if isinstance(value, dict):
                for key in getattr(value, "duplicates", ()):
                    errors.append(
                        FieldError(
                            pointer((*path, key)),
                            "DUPLICATE_KEY",
                            "The member appears more than once in its object.",
                        )
                    )
                children = list(value.items())
                for key, _ in children:
                    if "\x00" in key:
                        errors.append(
                            FieldError(
                                pointer((*path, key)),
                                "NUL_IN_STRING",
                                "Object keys must not contain NUL (U+0000).",
                            )
                        )
                stack.extend((v, (*path, k), depth + 1) for k, v in reversed(children))
            else:
                stack.extend(
                    (v, (*path, i), depth + 1) for i, v in reversed(list(enumerate(value)))
                )
    return errors[:MAX_REPORTED_ERRORS]


async def read_json(
    request: Request,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> Any:
    """Check the media type, read the (size-capped) body and :func:`parse_json` it."""
    check_media_type(request.headers.get("content-type"))
    raw = await request.body()
    return parse_json(raw, max_depth=max_depth, max_items=max_items)
