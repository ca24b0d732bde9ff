"""The command line as a user meets it: help, version, config check, db commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monitor import __version__

CONFIG = """
[database]
url = "{url}"
[[models]]
name = "m"
path = "model.keras"
task = "binary_classification"
[models.features]
numeric = ["a"]
"""


def test_help_is_fast_and_imports_no_tensorflow():
    code = (
        "import sys\n"
        "from monitor.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'evidently', 'keras', 'fastapi', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "config" in out and "db" in out


def test_version(run_monitor):
    proc = run_monitor("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_config_check_prints_masked_settings(run_monitor, write_config):
    path = write_config(CONFIG.format(url="postgresql://u:hunter2@h/db"))
    proc = run_monitor(
        "--config", str(path), "config", "check", env={"MONITOR_INGEST_TOKEN": "secret-token-1"}
    )
    assert proc.returncode == 0, proc.stderr
    assert 'models[0].name = "m"' in proc.stdout
    assert "hunter2" not in proc.stdout and "secret-token-1" not in proc.stdout
    assert "does not exist (yet)" in proc.stderr  # the model file is only a warning


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        pytest.param(
            ('task = "binary_classification"', 'task = "binary_classification"\nsample_size = -5'),
            "models[0].sample_size: must be > 0, got -5",
            id="negative",
        ),
        pytest.param(
            ('task = "binary_classification"', 'task = "binary_classification"\nwindw = "1h"'),
            "models[0].windw: unknown key (did you mean 'window'?)",
            id="typo",
        ),
    ],
)
def test_config_check_fails_and_names_the_key(run_monitor, write_config, replace, message):
    path = write_config(CONFIG.format(url="sqlite:///x.db").replace(*replace))
    proc = run_monitor("--config", str(path), "config", "check")
    assert proc.returncode == 2
    assert f"error: {path}: {message}" in proc.stderr


def test_config_from_environment_variable(run_monitor, write_config):
    path = write_config(CONFIG.format(url="sqlite:///x.db"), name="elsewhere.toml")
    proc = run_monitor("config", "check", env={"MONITOR_CONFIG": str(path)})
    assert proc.returncode == 0 and f"{path}: OK" in proc.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_db_upgrade_and_current(request, run_monitor, write_config, tmp_path, backend):
    url = (
        f"sqlite:///{tmp_path / 'cli.db'}" if backend == "sqlite" else request.getfixturevalue("fresh_pg_url")
    )
    path = write_config(CONFIG.format(url=url))
    before = run_monitor("--config", str(path), "db", "current")
    assert before.returncode == 3 and "run `monitor db upgrade`" in before.stdout
    up = run_monitor("--config", str(path), "db", "upgrade")
    assert up.returncode == 0 and "upgraded from empty to" in up.stdout, up.stderr
    again = run_monitor("--config", str(path), "db", "upgrade")
    assert "already at revision" in again.stdout
    after = run_monitor("--config", str(path), "db", "current")
    assert after.returncode == 0 and "(head)" in after.stdout


def test_unreachable_database_is_a_clear_error(run_monitor, write_config):
    path = write_config(CONFIG.format(url="postgresql://u:pw-secret@127.0.0.1:1/x"))
    proc = run_monitor("--config", str(path), "db", "current")
    assert proc.returncode == 1
    assert "cannot connect to database" in proc.stderr and "pw-secret" not in proc.stderr
