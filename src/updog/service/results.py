"""Engine results on their way to storage: JSON-safe and finite, or refused.

SPEC §1: floats are finite only. An engine result with NaN/Infinity (or a type JSON cannot
hold) is a server fault, :class:`EngineResultInvalid`, and is never stored.
"""

from __future__ import annotations

import json
from typing import Any

from updog.store.repositories import FundVersion


class EngineResultInvalid(RuntimeError):
    """The engine produced a result that cannot be stored (non-finite or unserialisable)."""

    code = "ENGINE_RESULT_INVALID"


def _default(obj: Any) -> Any:
    # numpy scalars and arrays, without importing numpy here
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def checked_json(result: Any) -> dict[str, Any]:
    """Round-trip ``result`` through strict JSON (``allow_nan=False``); returns plain dicts.
    Raises :class:`EngineResultInvalid` for non-finite numbers or unserialisable values."""
    try:
        text = json.dumps(result, allow_nan=False, default=_default)
    except (ValueError, TypeError) as exc:
        raise EngineResultInvalid(str(exc)) from exc
    value = json.loads(text)
    if not isinstance(value, dict):
        raise EngineResultInvalid("the engine result is not an object")
    return value


def simulation_params(fund_version: FundVersion, *, seed_drawn: bool) -> dict[str, Any]:
    """The ``params`` stored with a simulation of ``fund_version``: its draft revision (as
    ``version``), kind and published version number, and whether the seed was drawn."""
    return {
        "version": fund_version.revision,
        "kind": fund_version.kind,
        "published_version": fund_version.published_version,
        "seed_drawn": seed_drawn,
    }
