"""Publication checks: a complete, valid spec whose construction the engines can evaluate.

:func:`validate_publish` runs every field and cross-field rule of :mod:`updog.model.spec` (all
errors at once, each with a JSON Pointer path, RFC 6901), then solves the construction
(:func:`updog.model.construction.solve_plan`): an infeasible plan is an error
(``PLAN_INFEASIBLE``, with the path to change), and the construction's warnings join the
spec's own.
"""

from __future__ import annotations

from updog.model.construction import solve_plan
from updog.model.plan import PlanError
from updog.model.spec import FundSpec, Issue, SpecError, all_issues, spec_warnings


def validate_publish(data: object) -> tuple[FundSpec | None, list[Issue], list[Issue]]:
    """Check a spec for publication. Returns ``(spec, errors, warnings)``; ``spec`` is None
    whenever ``errors`` is non-empty. Every error is reported, each with its path."""
    if not isinstance(data, dict):
        return (
            None,
            [Issue(path="", code="NOT_AN_OBJECT", message="a fund spec must be a JSON object")],
            [],
        )
    issues = all_issues(data)
    if issues:
        return None, issues, []
    spec = FundSpec.model_validate(data)
    try:
        solved = solve_plan(spec)
    except PlanError as exc:
        return None, [Issue(path=exc.path, code="PLAN_INFEASIBLE", message=str(exc))], []
    return spec, [], spec_warnings(spec) + solved.warnings


def load_spec(data: object) -> FundSpec:
    """Parse and validate a complete spec, raising :class:`SpecError` with every issue."""
    spec, errors, _ = validate_publish(data)
    if spec is None:
        raise SpecError(errors)
    return spec


__all__ = ["load_spec", "validate_publish"]
