"""Settings: environment parsing, validation, and the persisted secret key."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from updog.settings import Settings, SettingsError, load_or_create_secret_key


def test_defaults_and_environment(tmp_path: Path) -> None:
    s = Settings.from_env({"UPDOG_DATA_DIR": str(tmp_path)})
    assert (s.host, s.port, s.sync_runs_limit, s.max_body_bytes) == (
        "127.0.0.1",
        8000,
        20_000,
        1_000_000,
    )
    assert s.database_url is None and s.redis_url is None
    assert s.pgdata == tmp_path / "pgdata"
    s = Settings.from_env(
        {
            "UPDOG_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://u:secret@db/x",
            "UPDOG_PORT": "9000",
            "UPDOG_DB_POOL_TIMEOUT": "2.5",
            "UPDOG_SECRET_KEY": "k" * 40,
        },
        host="0.0.0.0",
    )
    assert (s.port, s.db_pool_timeout, s.host, s.secret_key) == (9000, 2.5, "0.0.0.0", "k" * 40)
    assert "secret" not in repr(s)  # URLs and the key stay out of logs


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("UPDOG_PORT", "eighty"),
        ("UPDOG_PORT", "70000"),
        ("UPDOG_DB_POOL_TIMEOUT", "nan"),
        ("UPDOG_DB_POOL_MAX_SIZE", "0"),
        ("UPDOG_SYNC_RUNS_LIMIT", "-1"),
    ],
)
def test_bad_values_fail_at_start_up(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"UPDOG_DATA_DIR": str(tmp_path), var: value})


def test_secret_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    keys: list[str] = []
    threads = [
        threading.Thread(target=lambda: keys.append(load_or_create_secret_key(tmp_path)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) >= 40
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert Settings.from_env({"UPDOG_DATA_DIR": str(tmp_path)}).secret_key == keys[0]
    assert list(tmp_path.iterdir()) == [tmp_path / "secret_key"]  # no temporary files left
