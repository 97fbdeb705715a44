"""``updog check-cases`` as a user runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner, Result

from updog.cli import main

TRUTH = Path(__file__).resolve().parents[1] / "fixtures" / "truth"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def _run(*args: str) -> Result:
    return CliRunner().invoke(main, ["check-cases", *args])


def test_every_fixture_case_passes() -> None:
    files = sorted(str(p) for p in TRUTH.glob("*.json"))
    result = _run(*files)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "87 passed, 0 failed"
    assert all(line.endswith(" PASS") for line in lines[:-1])
    assert len(lines) == 88


def test_a_failing_case_names_the_field_expected_and_actual(tmp_path: Path) -> None:
    data = json.loads((TRUTH / "waterfall.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["scenario"].startswith("04-"))
    case["expected"]["gpDistribution"] = "100000.02"
    path = tmp_path / "waterfall.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    result = _run(str(path))

    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if x.startswith("04-"))
    assert "FAIL" in line
    assert 'gpDistribution: expected "100000.02", actual 100000.00' in line
    assert result.output.splitlines()[-1] == "8 passed, 1 failed"


def test_unreadable_file_is_a_clear_failure_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[{", encoding="utf-8")
    result = _run(str(bad), str(tmp_path / "missing.json"), str(TRUTH / "moic.json"))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{bad} FAIL unreadable file:" in result.output
    assert "No such file or directory" in result.output
    match = SUMMARY.match(result.output.splitlines()[-1])
    assert match is not None
    assert match.groups() == ("8", "2")


def test_a_malformed_case_fails_alone(tmp_path: Path) -> None:
    data = json.loads((TRUTH / "moic.json").read_text(encoding="utf-8"))
    data["cases"][0]["input"]["initialInvestment"] = -5
    data["cases"].append("nonsense")
    path = tmp_path / "moic.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    result = _run(str(path))
    assert result.exit_code == 1
    assert "MOIC-001 FAIL error: invalid input" in result.output
    assert result.output.splitlines()[-1] == "7 passed, 2 failed"


def test_files_are_required() -> None:
    result = _run()
    assert result.exit_code == 2
