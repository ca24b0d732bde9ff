"""The one helper that runs the `monitor` command in a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str,
    config: Path | str | None = None,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`python -m monitor [--config CONFIG] ARGS...`; with `check`, a non-zero exit
    raises AssertionError carrying its stderr. MONITOR_CONFIG is dropped from the
    environment unless `env` sets it."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    if env is None or "MONITOR_CONFIG" not in env:
        full_env.pop("MONITOR_CONFIG", None)
    head = ["--config", str(config)] if config is not None else []
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", *head, *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"monitor {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc
