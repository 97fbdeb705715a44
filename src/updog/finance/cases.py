"""Truth-case adapter: run reference case files through the kernel and compare (SPEC §3.1).

A case file is a JSON list of cases (the format of ``../shared/truth-cases/``) or an object
``{"cases": [...]}`` (the project's fixtures). The family of each case is detected from its
content (:func:`detect_family`). The adapter converts the file's units to ours (``$M`` to
dollars, percent to ratios), runs the kernel, converts the outcome back to the file's units and
compares every outcome field present in the case's expectation:

* numbers: within the case's ``tolerance`` when it has one — for XIRR as
  ``|actual − expected| <= tol × max(1, |expected|)`` (absolute below 100 %, relative above),
  for the other families as an absolute difference in the file's units — or else within
  ``0.005`` dollars for money and ``1e-9`` relative for everything else. An expected value
  written as a decimal string with ``k`` decimals states its own precision, so a difference of
  half a unit in its last place (``0.5 × 10^-k``) is accepted as well;
* None-ness (expected None ⇔ actual None), booleans, strings and list lengths exactly; lists of
  ids and warning codes as sets; ``*_min`` / ``*_max`` keys as bounds on the field they name;
* prose (``notes``, ``description``, ``derivation``, ...) and solver-internal fields
  (``algorithm``, ``excelParity``) are ignored; per-case solver options of XIRR
  (``strategy``, ``maxIterations``, ``tolerance``) are honoured, with day count Actual/365.25.

A case whose input the adapter does not understand (an unknown field, a bad value) fails with a
message; it is never silently run with part of its input ignored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal, cast

from pydantic import ValidationError

from updog.finance._decimal import to_decimal
from updog.finance.fees import FeeBasis, FeeTier, management_fees
from updog.finance.ledger import LedgerConfig, LedgerContribution, LedgerExit, waterfall_ledger
from updog.finance.lp_metrics import CashFlowEvent, ValuationMark, lp_metrics
from updog.finance.moic import (
    Investment,
    blended_moic,
    current_moic,
    exit_moic,
    follow_on_moic,
    initial_moic,
    opportunity_cost_moic,
    reserves_moic,
)
from updog.finance.recycling import ExitEvent, RecyclingTerms, recycling, recycling_capacity
from updog.finance.waterfall import TierKind, WaterfallPolicy, WaterfallTier, distribute
from updog.finance.xirr import xirr_result

__all__ = [
    "FAMILIES",
    "CaseError",
    "CaseFileError",
    "CaseOutcome",
    "Family",
    "FieldDiff",
    "check_file",
    "detect_family",
    "load_cases",
    "run_case",
    "run_cases",
]

Family = Literal[
    "xirr", "fees", "waterfall", "waterfall-ledger", "moic", "exit-recycling", "lp-metrics"
]
FAMILIES: Final[tuple[Family, ...]] = (
    "xirr",
    "fees",
    "waterfall",
    "waterfall-ledger",
    "moic",
    "exit-recycling",
    "lp-metrics",
)

#: Keys never compared: prose and solver internals.
IGNORED_KEYS: Final[frozenset[str]] = frozenset(
    {"notes", "note", "description", "derivation", "algorithm", "excelParity", "comment"}
)
#: Lists compared as sets (ids, codes).
UNORDERED_KEYS: Final[frozenset[str]] = frozenset({"excludedFutureMarks", "warningCodes"})
MONEY_ABS_TOL: Final[Decimal] = Decimal("0.005")
REL_TOL: Final[Decimal] = Decimal("1e-9")
_TINY: Final[Decimal] = Decimal("1e-12")
MILLION: Final[Decimal] = Decimal(1_000_000)
HUNDRED: Final[Decimal] = Decimal(100)
_DECIMAL_STRING = re.compile(r"^\s*-?\d+(\.(\d+))?\s*$")


class CaseError(ValueError):
    """A case that cannot be run: unknown family, unsupported or invalid input."""


class CaseFileError(Exception):
    """A case file that cannot be read or parsed."""


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field that differs: its path in the expectation, the expected and actual values."""

    path: str
    expected: object
    actual: object
    reason: str = ""

    def describe(self) -> str:
        text = f"{self.path}: expected {_show(self.expected)}, actual {_show(self.actual)}"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """Result of one case: ``passed`` when no field differs and the case ran."""

    case_id: str
    family: str | None
    diffs: tuple[FieldDiff, ...] = ()
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not self.diffs

    def line(self) -> str:
        """``<id> PASS`` or ``<id> FAIL <details>`` (one line)."""
        if self.passed:
            return f"{self.case_id} PASS"
        if self.error is not None:
            return f"{self.case_id} FAIL error: {self.error}"
        return f"{self.case_id} FAIL " + "; ".join(d.describe() for d in self.diffs)


# --------------------------------------------------------------------------------------------
# Loading and detection
# --------------------------------------------------------------------------------------------


def load_cases(path: str | Path) -> list[object]:
    """The cases of a case file, or :class:`CaseFileError` with a readable reason.

    The entries are returned as parsed; :func:`run_case` reports an entry that is not a JSON
    object as a failed case.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CaseFileError(f"cannot read {p}: {reason}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaseFileError(f"{p} is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("cases"), list):
        return list(data["cases"])
    if isinstance(data, list):
        return list(data)
    if isinstance(data, dict) and ("input" in data or "cashflows" in data):
        return [data]
    raise CaseFileError(f"{p} holds no list of cases")


def _case_id(case: object, index: int) -> str:
    if not isinstance(case, Mapping):
        return f"case#{index + 1}"
    for key in ("id", "scenario"):
        if isinstance(case.get(key), (str, int)):
            return str(case[key])
    return f"case#{index + 1}"


def detect_family(case: Mapping[str, Any]) -> Family:
    """The family of ``case`` from its content (field names), or :class:`CaseError`."""
    inp = case.get("input")
    inp = inp if isinstance(inp, Mapping) else {}
    if "cashflows" in case or "cashflows" in inp or "expectedIRR" in case:
        return "xirr"
    if "policy" in inp and "exitProceeds" in inp:
        return "waterfall"
    if "contributions" in inp and "exits" in inp:
        return "waterfall-ledger"
    if "cashFlowEvents" in inp or "valuationMarks" in inp:
        return "lp-metrics"
    if "variant" in case or "initialInvestment" in inp or "portfolio" in inp:
        return "moic"
    if "recyclingCapPercent" in inp:
        return "exit-recycling"
    if "feeRate" in inp or case.get("category") == "management_fee":
        return "fees"
    raise CaseError("cannot tell the case family from its fields")


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rules:
    """How numbers are compared for one case."""

    case_tolerance: Decimal | None = None
    relative_case_tolerance: bool = False  # XIRR: tol × max(1, |expected|)
    money_keys: frozenset[str] = frozenset()
    money_unit: Decimal = Decimal(1)  # dollars per unit of the file (1e6 for $M)

    def tolerance(self, key: str, expected: Decimal, raw: object) -> Decimal:
        if self.case_tolerance is not None:
            tol = self.case_tolerance
            if self.relative_case_tolerance:
                tol *= max(Decimal(1), abs(expected))
        elif key in self.money_keys:
            tol = MONEY_ABS_TOL / self.money_unit
        else:
            tol = max(REL_TOL * abs(expected), _TINY)
        if isinstance(raw, str):
            match = _DECIMAL_STRING.match(raw)
            if match:
                places = len(match.group(2) or "")
                tol = max(tol, Decimal(5).scaleb(-(places + 1)))
        return tol


def _show(value: object) -> str:
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= -6:
            return str(value)
        return format(value, ".15g")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return json.dumps(value) if isinstance(value, (str, bool)) or value is None else str(value)


def _number(value: object) -> Decimal | None:
    """``value`` as a Decimal when it is a number or a numeric string, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _DECIMAL_STRING.match(value):
        return Decimal(value.strip())
    return None


def _key_of(path: str) -> str:
    last = path.rsplit(".", 1)[-1]
    return last.split("[", 1)[0]


def _compare(expected: object, actual: object, path: str, rules: _Rules) -> list[FieldDiff]:
    key = _key_of(path)
    if expected is None:
        return [] if actual is None else [FieldDiff(path, expected, actual)]
    if isinstance(expected, bool):
        return [] if actual is expected else [FieldDiff(path, expected, actual)]
    exp_num = _number(expected)
    if exp_num is not None:
        return _compare_number(expected, exp_num, actual, path, key, rules)
    if isinstance(expected, str):
        return [] if actual == expected else [FieldDiff(path, expected, actual)]
    if isinstance(expected, Mapping):
        return _compare_mapping(expected, actual, path, rules)
    if isinstance(expected, list):
        if not isinstance(actual, (list, tuple)):
            return [FieldDiff(path, expected, actual, "not a list")]
        if len(actual) != len(expected):
            return [FieldDiff(path, expected, actual, "length differs")]
        if key in UNORDERED_KEYS:
            exp_sorted = sorted(expected, key=str)
            act_sorted = sorted(actual, key=str)
            if [str(x) for x in exp_sorted] != [str(x) for x in act_sorted]:
                return [FieldDiff(path, expected, list(actual))]
            return []
        diffs: list[FieldDiff] = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            diffs.extend(_compare(e, a, f"{path}[{i}]", rules))
        return diffs
    return [FieldDiff(path, expected, actual, "unsupported expected value")]


def _compare_number(
    raw: object, expected: Decimal, actual: object, path: str, key: str, rules: _Rules
) -> list[FieldDiff]:
    act = _number(actual)
    if act is None:
        return [FieldDiff(path, raw, actual)]
    tol = rules.tolerance(key, expected, raw)
    if abs(act - expected) <= tol:
        return []
    return [FieldDiff(path, raw, act)]


def _compare_mapping(
    expected: Mapping[str, Any], actual: object, path: str, rules: _Rules
) -> list[FieldDiff]:
    if not isinstance(actual, Mapping):
        return [FieldDiff(path or "(expectation)", dict(expected), actual, "not an object")]
    diffs: list[FieldDiff] = []
    for key, exp in expected.items():
        if key in IGNORED_KEYS:
            continue
        sub = f"{path}.{key}" if path else key
        bound = re.fullmatch(r"(.+)_(min|max)", key)
        if bound and bound.group(1) in actual and key not in actual:
            diffs.extend(_compare_bound(exp, actual[bound.group(1)], sub, bound.group(2), rules))
            continue
        if key not in actual:
            diffs.append(FieldDiff(sub, exp, None, "the kernel does not compute this field"))
            continue
        diffs.extend(_compare(exp, actual[key], sub, rules))
    return diffs


def _compare_bound(
    expected: object, actual: object, path: str, side: str, rules: _Rules
) -> list[FieldDiff]:
    bound, act = _number(expected), _number(actual)
    if bound is None or act is None:
        return [FieldDiff(path, expected, actual, "not a number")]
    tol = rules.tolerance(_key_of(path).rsplit("_", 1)[0], bound, expected)
    ok = act >= bound - tol if side == "min" else act <= bound + tol
    return [] if ok else [FieldDiff(path, expected, act, f"out of bound ({side})")]


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise CaseError(f"{where} lacks {key!r}")
    return mapping[key]


def _only(mapping: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(mapping) - set(allowed) - IGNORED_KEYS)
    if unknown:
        raise CaseError(f"unsupported {where} field(s): {', '.join(unknown)}")


def _dec(value: object, name: str) -> Decimal:
    try:
        return to_decimal(value, name)
    except ValueError as exc:
        raise CaseError(str(exc)) from exc


def _millions(value: object, name: str) -> Decimal:
    return _dec(value, name) * MILLION


def _percent(value: object, name: str) -> Decimal:
    return _dec(value, name) / HUNDRED


def _to_millions(value: Decimal) -> Decimal:
    return value / MILLION


def _expected(case: Mapping[str, Any]) -> Mapping[str, Any]:
    for key in ("expected", "expectedOutput"):
        if isinstance(case.get(key), Mapping):
            return cast(Mapping[str, Any], case[key])
    raise CaseError("the case has no 'expected' or 'expectedOutput' object")


def _date(value: object, name: str) -> date:
    if not isinstance(value, str):
        raise CaseError(f"{name} must be an ISO date string")
    try:
        if len(value.strip()) == 10:
            return date.fromisoformat(value.strip())
        return datetime.fromisoformat(value.strip()).date()
    except ValueError as exc:
        raise CaseError(f"{name} is not an ISO date: {value!r}") from exc


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------

_Runner = Callable[[Mapping[str, Any]], tuple[Mapping[str, Any], Mapping[str, Any], _Rules]]


def _run_xirr(case: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], _Rules]:
    inp = case.get("input") if isinstance(case.get("input"), Mapping) else case
    assert isinstance(inp, Mapping)
    flows = inp.get("cashflows", case.get("cashflows"))
    if not isinstance(flows, list):
        raise CaseError("cashflows must be a list")
    config = inp.get("config", case.get("config")) or {}
    if not isinstance(config, Mapping):
        raise CaseError("config must be an object")
    _only(
        config,
        ("strategy", "maxIterations", "tolerance", "guess", "sortAndAggregateSameDay"),
        "config",
    )
    if config.get("sortAndAggregateSameDay", True) is not True:
        raise CaseError("xirr always sorts and aggregates same-day flows")
    dates: list[datetime] = []
    amounts: list[float] = []
    for i, flow in enumerate(flows):
        if not isinstance(flow, Mapping):
            raise CaseError(f"cashflows[{i}] must be an object")
        raw = _require(flow, "date", f"cashflows[{i}]")
        if not isinstance(raw, str):
            raise CaseError(f"cashflows[{i}].date must be a string")
        try:
            dates.append(datetime.fromisoformat(raw))
        except ValueError as exc:
            raise CaseError(f"cashflows[{i}].date is not ISO-8601: {raw!r}") from exc
        amounts.append(float(_dec(_require(flow, "amount", f"cashflows[{i}]"), "amount")))
    options: dict[str, Any] = {"day_count": "actual/365.25"}
    strategy = config.get("strategy")
    if strategy is None and "expected" not in case and isinstance(case.get("algorithm"), str):
        strategy = case["algorithm"]  # the schema's top-level solver choice
    if strategy is not None:
        options["strategy"] = str(strategy).lower()
    if "maxIterations" in config:
        options["max_iterations"] = config["maxIterations"]
    if "tolerance" in config:
        options["tolerance"] = float(_dec(config["tolerance"], "tolerance"))
    if "guess" in config:
        options["guess"] = float(_dec(config["guess"], "guess"))
    try:
        result = xirr_result(dates, amounts, **options)
    except TypeError as exc:
        raise CaseError(str(exc)) from exc
    if isinstance(case.get("expected"), Mapping):
        expected: Mapping[str, Any] = case["expected"]
    elif "expectedIRR" in case:
        expected = {"irr": case["expectedIRR"]}
    else:
        raise CaseError("the case has no expectation")
    tol_raw = case.get("tolerance", config.get("tolerance"))
    rules = _Rules(
        case_tolerance=None if tol_raw is None else _dec(tol_raw, "tolerance"),
        relative_case_tolerance=True,
    )
    actual = {"irr": result.rate, "converged": result.converged}
    return expected, actual, rules


_CALLED = ("calledCapitalSchedule",)
_INVESTED = ("investedCapitalSchedule", "unrealizedCostSchedule", "calledCapitalSchedule")
_NAV = ("portfolioFmvSchedule", "fmvSchedule", "navSchedule")
#: Case basis name → (our basis, the schedule keys it reads, in order of preference).
_FEE_BASES: Final[Mapping[str, tuple[FeeBasis, tuple[str, ...]]]] = {
    "committed": (FeeBasis.COMMITTED, ()),
    "called": (FeeBasis.CALLED_CUMULATIVE, _CALLED),
    "called_cumulative": (FeeBasis.CALLED_CUMULATIVE, _CALLED),
    "called_net": (FeeBasis.CALLED_NET_OF_RETURNS, _CALLED),
    "net_called": (FeeBasis.CALLED_NET_OF_RETURNS, _CALLED),
    "called_net_of_returns": (FeeBasis.CALLED_NET_OF_RETURNS, _CALLED),
    "invested": (FeeBasis.INVESTED_COST, _INVESTED),
    "invested_cost": (FeeBasis.INVESTED_COST, _INVESTED),
    "unrealized_cost": (FeeBasis.INVESTED_COST, _INVESTED),
    "fmv": (FeeBasis.NAV, _NAV),
    "nav": (FeeBasis.NAV, _NAV),
}
#: Cumulative capital returned to LPs, for the net-of-returns basis.
_RETURNED = ("returnedCapitalSchedule", "distributionSchedule", "distributedCapitalSchedule")
_FEE_MONEY: Final[frozenset[str]] = frozenset({"totalFees", "yearlyFees", "averageAnnualFee"})


def _fee_rates(inp: Mapping[str, Any], years: int) -> list[Decimal]:
    """Rate of each fund year from the case's feeRate, step-downs and fee holidays."""
    rates = [_percent(inp["feeRate"], "feeRate")] * years
    steps: list[Any] = []
    if "stepDown" in inp:
        steps.append(inp["stepDown"])
    if "stepDowns" in inp:
        if not isinstance(inp["stepDowns"], list):
            raise CaseError("stepDowns must be a list")
        steps.extend(inp["stepDowns"])
    last_after = 0
    for i, step in enumerate(sorted(steps, key=lambda s: int(s.get("afterYear", 0)))):
        if not isinstance(step, Mapping):
            raise CaseError(f"step-down #{i + 1} must be an object")
        _only(step, ("afterYear", "newRate"), "stepDown")
        after = _require(step, "afterYear", "stepDown")
        if isinstance(after, bool) or not isinstance(after, int) or after < 1:
            raise CaseError("stepDown.afterYear must be an integer >= 1")
        if after == last_after:
            raise CaseError(f"two step-downs after year {after}")
        last_after = after
        new_rate = _percent(_require(step, "newRate", "stepDown"), "stepDown.newRate")
        for y in range(after, years):
            rates[y] = new_rate
    holidays: set[int] = set()
    if "feeHolidayYears" in inp:
        if not isinstance(inp["feeHolidayYears"], list):
            raise CaseError("feeHolidayYears must be a list of years")
        holidays.update(int(y) for y in inp["feeHolidayYears"])
    for key in ("feeHoliday", "feeHolidays"):
        spans = inp.get(key)
        if spans is None:
            continue
        for span in spans if isinstance(spans, list) else [spans]:
            if not isinstance(span, Mapping):
                raise CaseError(f"{key} must be an object or a list of objects")
            _only(span, ("startYear", "endYear"), key)
            start = int(_require(span, "startYear", key))
            end = int(span.get("endYear", start))
            holidays.update(range(start, end + 1))
    for y in holidays:
        if 1 <= y <= years:
            rates[y - 1] = Decimal(0)
    return rates


def _run_fees(case: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], _Rules]:
    category = case.get("category", "management_fee")
    if category != "management_fee":
        raise CaseError(f"fee category {category!r} is not supported (management_fee only)")
    inp = _require(case, "input", "the case")
    _only(
        inp,
        (
            "fundSize",
            "feeRate",
            "basis",
            "fundTerm",
            "stepDown",
            "stepDowns",
            "feeHoliday",
            "feeHolidays",
            "feeHolidayYears",
            *_CALLED,
            *_INVESTED,
            *_NAV,
            *_RETURNED,
        ),
        "input",
    )
    years = _require(inp, "fundTerm", "input")
    if isinstance(years, bool) or not isinstance(years, int):
        raise CaseError("fundTerm must be an integer")
    basis_name = str(_require(inp, "basis", "input"))
    if basis_name not in _FEE_BASES:
        raise CaseError(f"unknown fee basis {basis_name!r}")
    basis, schedule_keys = _FEE_BASES[basis_name]
    _require(inp, "feeRate", "input")
    rates = _fee_rates(inp, years)
    tiers: list[FeeTier] = []
    for year, rate in enumerate(rates, start=1):
        if rate == 0:
            continue
        if tiers and tiers[-1].rate == rate and tiers[-1].end_year == year - 1:
            tiers[-1] = tiers[-1].model_copy(update={"end_year": year})
        else:
            tiers.append(FeeTier(rate=rate, basis=basis, start_year=year, end_year=year))

    def schedule(key: str) -> list[Decimal] | None:
        values = inp.get(key)
        if values is None:
            return None
        if not isinstance(values, list):
            raise CaseError(f"{key} must be a list")
        return [_millions(v, f"{key}[{i}]") for i, v in enumerate(values)]

    kwargs: dict[str, list[Decimal] | None] = {}
    source = next((k for k in schedule_keys if k in inp), None)
    if schedule_keys and source is None:
        raise CaseError(f"basis {basis_name!r} needs {' or '.join(schedule_keys)}")
    if basis is FeeBasis.CALLED_CUMULATIVE or basis is FeeBasis.CALLED_NET_OF_RETURNS:
        kwargs["called"] = schedule("calledCapitalSchedule")
    if basis is FeeBasis.CALLED_NET_OF_RETURNS:
        returned = next((k for k in _RETURNED if k in inp), None)
        if returned is None:
            raise CaseError(f"basis {basis_name!r} needs {' or '.join(_RETURNED)}")
        kwargs["returned"] = schedule(returned)
    if basis is FeeBasis.INVESTED_COST and source is not None:
        kwargs["invested_cost"] = schedule(source)
    if basis is FeeBasis.NAV and source is not None:
        kwargs["nav"] = schedule(source)
    result = management_fees(
        tiers, _millions(_require(inp, "fundSize", "input"), "fundSize"), years, **kwargs
    )
    actual = {
        "yearlyFees": [_to_millions(f) for f in result.yearly],
        "totalFees": _to_millions(result.total),
        "averageAnnualFee": _to_millions(result.average),
    }
    return _expected(case), actual, _case_rules(case, _FEE_MONEY, MILLION)


def _case_rules(case: Mapping[str, Any], money: frozenset[str], unit: Decimal) -> _Rules:
    tol = case.get("tolerance")
    return _Rules(
        case_tolerance=None if tol is None else _dec(tol, "tolerance"),
        money_keys=money,
        money_unit=unit,
    )


_WATERFALL_MONEY: Final[frozenset[str]] = frozenset(
    {"lpDistribution", "gpDistribution", "totalDistributed", "lpAmount", "gpAmount", "amount"}
)


def _run_waterfall(
    case: Mapping[str, Any],
) -> tuple[Mapping[str, Any], Mapping[str, Any], _Rules]:
    inp = _require(case, "input", "the case")
    _only(inp, ("policy", "exitProceeds", "dealCost"), "input")
    policy = _require(inp, "policy", "input")
    if not isinstance(policy, Mapping):
        raise CaseError("policy must be an object")
    _only(
        policy,
        (
            "id",
            "name",
            "type",
            "tiers",
            "preferredReturnRate",
            "hurdleRateBasis",
            "cumulativeCalculations",
        ),
        "policy",
    )
    if policy.get("type", "american") != "american":
        raise CaseError(f"waterfall type {policy.get('type')!r} is not supported here")
    raw_tiers = _require(policy, "tiers", "policy")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise CaseError("policy.tiers must be a non-empty list")
    priorities = [t.get("priority") for t in raw_tiers if isinstance(t, Mapping)]
    if len(priorities) != len(raw_tiers) or len(set(map(str, priorities))) != len(priorities):
        raise CaseError("tier priorities must be present and unique")
    pref_rate = policy.get("preferredReturnRate")
    tiers: list[WaterfallTier] = []
    for t in sorted(raw_tiers, key=lambda t: int(t["priority"])):
        _only(t, ("tierType", "priority", "rate", "basis", "catchUpRate"), "tier")
        kind = str(_require(t, "tierType", "tier"))
        rate: Decimal | None
        if kind == "return_of_capital":
            rate = None
        elif kind == "preferred_return":
            rate = _dec(t.get("rate", pref_rate), "preferred return rate")
            if pref_rate is not None and _dec(pref_rate, "preferredReturnRate") != rate:
                raise CaseError("the preferred_return tier rate and preferredReturnRate differ")
        elif kind == "gp_catch_up":
            rate = _dec(_require(t, "catchUpRate", "gp_catch_up tier"), "catchUpRate")
        elif kind == "carry":
            rate = _dec(_require(t, "rate", "carry tier"), "carry rate")
        else:
            raise CaseError(f"unknown tier type {kind!r}")
        tiers.append(WaterfallTier(kind=TierKind(kind), rate=rate))
    result = distribute(
        WaterfallPolicy(tiers=tuple(tiers)),
        _dec(_require(inp, "exitProceeds", "input"), "exitProceeds"),
        _dec(_require(inp, "dealCost", "input"), "dealCost"),
    )
    expected = _expected(case)
    listed = {
        row.get("tier") for row in expected.get("breakdown", []) or [] if isinstance(row, Mapping)
    }
    breakdown = [
        {"tier": row.tier.value, "lpAmount": row.lp_amount, "gpAmount": row.gp_amount}
        | {"amount": row.amount}
        for row in result.breakdown
        # A tier the expectation leaves out must have paid nothing; it is then not listed.
        if row.tier.value in listed or row.lp_exact != 0 or row.gp_exact != 0
    ]
    actual = {
        "lpDistribution": result.lp_distribution,
        "gpDistribution": result.gp_distribution,
        "totalDistributed": result.total_distributed,
        "breakdown": breakdown,
    }
    return expected, actual, _case_rules(case, _WATERFALL_MONEY, Decimal(1))


_LEDGER_MONEY: Final[frozenset[str]] = frozenset(
    {
        "paidIn",
        "distributed",
        "recycled",
        "unrealizedCapital",
        "gpCarryTotal",
        "gpClawback",
        "gpCarryNet",
        "grossProceeds",
        "lpCapitalReturn",
        "lpProfitShare",
        "gpCarry",
        "recycledAmount",
    }
)
#: The case format's default share of LP proceeds recycled per exit (its "conservative skim").
LEDGER_CASE_DEFAULT_TAKE: Final[Decimal] = Decimal("0.5")


def _run_ledger(case: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], _Rules]:
    inp = _require(case, "input", "the case")
    _only(inp, ("config", "contributions", "exits"), "input")
    cfg = _require(inp, "config", "input")
    _only(
        cfg,
        (
            "carryPct",
            "hurdleRate",
            "recyclingEnabled",
            "recyclingCapPctOfCommitted",
            "recyclingWindowQuarters",
            "recyclingTakePctPerEvent",
            "clawbackEnabled",
            "clawbackLpHurdleMultiple",
            "committed",
        ),
        "config",
    )
    config = LedgerConfig(
        carry=cfg.get("carryPct"),
        hurdle=cfg.get("hurdleRate", 0),
        recycling_enabled=bool(cfg.get("recyclingEnabled", False)),
        recycling_cap=cfg.get("recyclingCapPctOfCommitted"),
        recycling_window_quarters=cfg.get("recyclingWindowQuarters"),
        recycling_take_rate=cfg.get("recyclingTakePctPerEvent", LEDGER_CASE_DEFAULT_TAKE),
        committed=cfg.get("committed"),
        clawback_enabled=bool(cfg.get("clawbackEnabled", False)),
        clawback_lp_hurdle_multiple=cfg.get("clawbackLpHurdleMultiple", 1),
    )
    contributions = [
        LedgerContribution(quarter=c.get("quarter"), amount=c.get("amount"))
        for c in _require(inp, "contributions", "input")
    ]
    exits = [
        LedgerExit(quarter=e.get("quarter"), gross_proceeds=e.get("grossProceeds"))
        for e in _require(inp, "exits", "input")
    ]
    result = waterfall_ledger(config, contributions, exits)
    t = result.totals
    totals = {
        "paidIn": t.paid_in,
        "distributed": t.distributed,
        "recycled": t.recycled,
        "unrealizedCapital": t.unrealized_capital,
        "dpi": t.dpi,
        "tvpi": t.tvpi,
        "gpCarryTotal": t.gp_carry_total,
        "gpClawback": t.gp_clawback,
        "gpCarryNet": t.gp_carry_net,
    }
    rows = [
        {
            "quarter": r.quarter,
            "grossProceeds": r.gross_proceeds,
            "lpCapitalReturn": r.lp_capital_return,
            "lpProfitShare": r.lp_profit_share,
            "gpCarry": r.gp_carry,
            "recycledAmount": r.recycled_amount,
            "gpClawback": r.gp_clawback,
            "running": {
                "paidIn": r.paid_in,
                "distributed": r.distributed,
                "recycled": r.recycled,
                "unrealizedCapital": r.unrealized_capital,
                "dpi": r.dpi,
                "tvpi": r.tvpi,
            },
        }
        for r in result.rows
    ]
    clawback_rows = [row for row in rows if row["gpClawback"] is not None]
    actual = {
        "totals": totals,
        "rows": rows,
        "rows_count": len(rows),
        "clawback_row": clawback_rows[-1] if clawback_rows else None,
    }
    return _expected(case), actual, _case_rules(case, _LEDGER_MONEY, Decimal(1))


_MOIC_INPUT: Final[Mapping[str, str]] = {
    "initialInvestment": "initial_investment",
    "followOnInvestment": "follow_on_investment",
    "currentValuation": "current_valuation",
    "projectedExitValue": "projected_exit_value",
    "exitProbability": "exit_probability",
    "plannedReserves": "planned_reserves",
    "reserveExitMultiple": "reserve_exit_multiple",
}


def _investment(raw: object, where: str) -> Investment:
    if not isinstance(raw, Mapping):
        raise CaseError(f"{where} must be an object")
    _only(raw, (*_MOIC_INPUT, "id", "name"), where)
    return Investment(**{_MOIC_INPUT[k]: v for k, v in raw.items() if k in _MOIC_INPUT})


def _run_moic(case: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any], _Rules]:
    inp = _require(case, "input", "the case")
    alternative = case.get("alternativeReturnRate", inp.get("alternativeReturnRate", 1))
    actual: dict[str, Decimal | None]
    if "portfolio" in inp:
        _only(inp, ("portfolio", "alternativeReturnRate"), "input")
        if not isinstance(inp["portfolio"], list):
            raise CaseError("portfolio must be a list")
        portfolio = [_investment(p, f"portfolio[{i}]") for i, p in enumerate(inp["portfolio"])]
        actual = {"blendedMOIC": blended_moic(portfolio)}
    else:
        inv = _investment({k: v for k, v in inp.items() if k != "alternativeReturnRate"}, "input")
        actual = {
            "currentMOIC": current_moic(inv),
            "exitMOIC": exit_moic(inv, probability_weighted=False),
            "exitMOICWeighted": exit_moic(inv, probability_weighted=True),
            "initialMOIC": initial_moic(inv),
            "followOnMOIC": follow_on_moic(inv),
            "reservesMOIC": reserves_moic(inv, probability_weighted=True),
            "reservesMOICUnweighted": reserves_moic(inv, probability_weighted=False),
            "opportunityCostMOIC": opportunity_cost_moic(inv, _dec(alternative, "alternative")),
            "blendedMOIC": blended_moic([inv]),
        }
    return _expected(case), actual, _case_rules(case, frozenset(), Decimal(1))


_RECYCLING_MONEY: Final[frozenset[str]] = frozenset(
    {
        "maxRecyclableCapital",
        "annualRecyclingCapacity",
        "totalRecycled",
        "totalReturnedToLPs",
        "returnedToLPs",
        "remainingCapacity",
        "excessProceeds",
        "fundProceeds",
        "recycledAmount",
        "cumulativeRecycled",
        "annualRecycled",
        "recycledFromEligibleExits",
        "returnedFromIneligibleExits",
    }
)


def _run_recycling(
    case: Mapping[str, Any],
) -> tuple[Mapping[str, Any], Mapping[str, Any], _Rules]:
    inp = _require(case, "input", "the case")
    _only(
        inp,
        ("fundSize", "recyclingCapPercent", "recyclingPeriod", "exitRecyclingRate", "exits"),
        "input",
    )
    terms = RecyclingTerms(
        cap=_percent(_require(inp, "recyclingCapPercent", "input"), "recyclingCapPercent"),
        period_years=_require(inp, "recyclingPeriod", "input"),
        rate=_percent(inp.get("exitRecyclingRate", 100), "exitRecyclingRate"),
    )
    size = _millions(_require(inp, "fundSize", "input"), "fundSize")
    cap = recycling_capacity(size, terms)
    actual: dict[str, Any] = {
        "maxRecyclableCapital": _to_millions(cap.max_recyclable),
        "recyclingCapPercentage": cap.cap * HUNDRED,
        "recyclingPeriodYears": cap.period_years,
        "annualRecyclingCapacity": _to_millions(cap.annual_capacity),
    }
    if "exits" in inp:
        exits = []
        for i, e in enumerate(inp["exits"]):
            if not isinstance(e, Mapping):
                raise CaseError(f"exits[{i}] must be an object")
            _only(e, ("id", "year", "grossProceeds", "ownershipPercent"), f"exits[{i}]")
            exits.append(
                ExitEvent(
                    exit_id=str(_require(e, "id", f"exits[{i}]")),
                    year=_require(e, "year", f"exits[{i}]"),
                    gross_proceeds=_millions(e.get("grossProceeds"), "grossProceeds"),
                    ownership=_percent(e.get("ownershipPercent", 100), "ownershipPercent"),
                )
            )
        s = recycling(size, terms, exits)
        actual |= {
            "totalRecycled": _to_millions(s.total_recycled),
            "totalReturnedToLPs": _to_millions(s.total_returned_to_lps),
            "returnedToLPs": _to_millions(s.total_returned_to_lps),
            "remainingCapacity": _to_millions(s.remaining_capacity),
            "capReached": s.cap_reached,
            "excessProceeds": _to_millions(s.excess_proceeds),
            "exitsWithinPeriod": s.exits_within_period,
            "exitsAfterPeriod": s.exits_after_period,
            "recycledFromEligibleExits": _to_millions(s.recycled_from_eligible_exits),
            "returnedFromIneligibleExits": _to_millions(s.returned_from_ineligible_exits),
            "recyclingByExit": [
                {
                    "exitId": r.exit_id,
                    "exitYear": r.exit_year,
                    "fundProceeds": _to_millions(r.fund_proceeds),
                    "recycledAmount": _to_millions(r.recycled_amount),
                    "returnedToLPs": _to_millions(r.returned_to_lps),
                    "withinPeriod": r.within_period,
                    "appliedRate": r.applied_rate * HUNDRED,
                }
                for r in s.by_exit
            ],
            "cumulativeByYear": [
                {
                    "year": y.year,
                    "cumulativeRecycled": _to_millions(y.cumulative_recycled),
                    "annualRecycled": _to_millions(y.annual_recycled),
                }
                for y in s.by_year
            ],
        }
    return _expected(case), actual, _case_rules(case, _RECYCLING_MONEY, MILLION)


_LP_MONEY: Final[frozenset[str]] = frozenset(
    {"contributionsTotal", "distributionsTotal", "currentNav"}
)


def _run_lp_metrics(
    case: Mapping[str, Any],
) -> tuple[Mapping[str, Any], Mapping[str, Any], _Rules]:
    inp = _require(case, "input", "the case")
    _only(inp, ("fundId", "asOfDate", "perspective", "cashFlowEvents", "valuationMarks"), "input")
    if inp.get("perspective", "lp_net") != "lp_net":
        raise CaseError(f"perspective {inp.get('perspective')!r} is not supported (lp_net)")
    events = []
    for i, e in enumerate(inp.get("cashFlowEvents", [])):
        where = f"cashFlowEvents[{i}]"
        _only(
            e,
            (
                "id",
                "eventType",
                "amount",
                "eventDate",
                "perspective",
                "status",
                "reversalOfEventId",
            ),
            where,
        )
        events.append(
            CashFlowEvent(
                id=_require(e, "id", where),
                event_type=_require(e, "eventType", where),
                amount=_require(e, "amount", where),
                event_date=_date(_require(e, "eventDate", where), f"{where}.eventDate"),
                status=e.get("status"),
                reversal_of=e.get("reversalOfEventId"),
            )
        )
    marks = []
    for i, m in enumerate(inp.get("valuationMarks", [])):
        where = f"valuationMarks[{i}]"
        _only(
            m,
            (
                "id",
                "fairValue",
                "markDate",
                "asOfDate",
                "status",
                "confidenceLevel",
                "companyId",
            ),
            where,
        )
        marks.append(
            ValuationMark(
                id=_require(m, "id", where),
                fair_value=_require(m, "fairValue", where),
                mark_date=_date(_require(m, "markDate", where), f"{where}.markDate"),
                status=m.get("status"),
                confidence=m.get("confidenceLevel", "medium"),
                company_id=m.get("companyId"),
            )
        )
    result = lp_metrics(events, marks, _date(_require(inp, "asOfDate", "input"), "asOfDate"))
    actual = {
        "contributionsTotal": result.contributions,
        "distributionsTotal": result.distributions,
        "currentNav": result.nav,
        "dpi": result.dpi,
        "rvpi": result.rvpi,
        "tvpi": result.tvpi,
        "moic": result.moic,
        "netIrr": result.net_irr,
        "netIrrConverges": result.net_irr_converges,
        "markConfidenceMix": dict(result.mark_confidence_mix),
        "excludedFutureMarks": list(result.excluded_future_marks),
        "warningCodes": list(result.warning_codes),
    }
    return _expected(case), actual, _case_rules(case, _LP_MONEY, Decimal(1))


_RUNNERS: Final[Mapping[Family, _Runner]] = {
    "xirr": _run_xirr,
    "fees": _run_fees,
    "waterfall": _run_waterfall,
    "waterfall-ledger": _run_ledger,
    "moic": _run_moic,
    "exit-recycling": _run_recycling,
    "lp-metrics": _run_lp_metrics,
}


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"])
            parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
        return "invalid input: " + "; ".join(parts)
    return str(exc) or type(exc).__name__


def run_case(case: object, index: int = 0) -> CaseOutcome:
    """Run one case and compare it; never raises for a bad case (the outcome says why)."""
    case_id = _case_id(case, index)
    family: Family | None = None
    if not isinstance(case, Mapping):
        return CaseOutcome(case_id, None, error="the case is not a JSON object")
    try:
        family = detect_family(case)
        expected, actual, rules = _RUNNERS[family](case)
        diffs = _compare_mapping(expected, actual, "", rules)
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        text = f"missing field {exc}" if isinstance(exc, KeyError) else _error_text(exc)
        return CaseOutcome(case_id, family, error=text)
    except Exception as exc:  # a malformed case must not stop the other cases
        return CaseOutcome(case_id, family, error=f"malformed case ({type(exc).__name__}: {exc})")
    return CaseOutcome(case_id, family, tuple(diffs))


def run_cases(cases: Sequence[object]) -> list[CaseOutcome]:
    """:func:`run_case` on each case, in order."""
    return [run_case(case, i) for i, case in enumerate(cases)]


def check_file(path: str | Path) -> list[CaseOutcome]:
    """Load a case file and run all its cases (:class:`CaseFileError` if unreadable)."""
    return run_cases(load_cases(path))
