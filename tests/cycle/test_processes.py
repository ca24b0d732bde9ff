"""The cycle and the daemon as processes: kill -9 mid-run, two processes on one
PostgreSQL window, and a daemon that serves /healthz and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from sqlalchemy import func, select

from monitor.baseline import build_baseline
from monitor.store import transaction
from monitor.store.tables import Alert, Run
from monitor.windows import last_complete_window
from tests.models import T0, WINDOW

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def monitor(settings, *args):
    return [sys.executable, "-m", "monitor", "--config", str(settings.source_path), *args]


def window_args():
    return ["--start", T0.isoformat(), "--end", (T0 + WINDOW).isoformat()]


def wait_for_line(proc, needle, timeout=120):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not seen; stderr was:\n{''.join(seen)}")


def counts(engine):
    with transaction(engine) as session:
        runs = session.scalar(select(func.count()).select_from(Run))
        keys = [a.dedup_key for a in session.scalars(select(Alert))]
    return runs, keys


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_one_complete_run(engine, settings, send_traffic):
    build_baseline(settings, engine, "cancer")
    send_traffic(engine, settings, T0, seed=7, shift=True)
    proc = subprocess.Popen(
        monitor(settings, "once", "cancer", *window_args()),
        env=ENV,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_line(proc, "computing cancer")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert counts(engine) == (0, [])  # nothing half-written
    done = subprocess.run(
        monitor(settings, "once", "cancer", "--json", *window_args()),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    runs, keys = counts(engine)
    assert runs == 1 and len(keys) == len(set(keys)) == len(document["alerts"]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite is single-daemon
def test_two_processes_on_postgresql_compute_a_window_once(settings, send_traffic, engine):
    build_baseline(settings, engine, "cancer")
    send_traffic(engine, settings, T0, seed=8, shift=True)
    procs = [
        subprocess.Popen(
            monitor(settings, "once", "cancer", "--json", *window_args()),
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ids = {json.loads(out)["run_id"] for out, _ in outputs}
    assert len(ids) == 1
    computed = [err.count("computing cancer") for _, err in outputs]
    assert sorted(computed) == [0, 1]  # one computed it, the other waited and read it
    runs, keys = counts(engine)
    assert runs == 1 and len(keys) == len(set(keys))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daemon(path) -> subprocess.Popen:
    """`monitor run` on the config at `path`, its log on a pipe to read lines from."""
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(path), "run"],
        env=ENV,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


def test_daemon_serves_healthz_and_stops_on_sigterm(settings, write_config, engine):
    port = free_port()
    text = settings.source_path.read_text() + f"\n[server]\nport = {port}\n"
    path = write_config(text, name="daemon.toml")
    proc = start_daemon(path)
    try:
        wait_for_line(proc, "monitor daemon started")
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                    health = json.loads(resp.read())
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert health["status"] == "ok" and health["scheduler"] == "running"
        assert "cycle:cancer" in health["jobs"] and "outbox" in health["jobs"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert b"monitor_outbox_backlog" in resp.read()
        proc.send_signal(signal.SIGTERM)
        wait_for_line(proc, "monitor daemon stopped", timeout=60)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the hang was in the scheduler
def test_sigterm_during_a_run_finishes_it_and_exits(settings, write_config, engine, send_traffic):
    """SIGTERM while the daemon computes a window: the run is stored once, then the
    process exits 0 (it used to hang: the finished job asked the stopping scheduler to
    deliver its alerts early)."""
    build_baseline(settings, engine, "cancer")
    start, end = last_complete_window(WINDOW)
    send_traffic(engine, settings, start, seed=9, shift=True)
    text = settings.source_path.read_text().replace('schedule = "interval:1h"', 'schedule = "interval:3s"')
    path = write_config(text + f"\n[server]\nport = {free_port()}\n", name="daemon.toml")
    proc = start_daemon(path)
    try:
        # the run loads TensorFlow and the model after this line: seconds of work left
        wait_for_line(proc, f"computing cancer {start.isoformat()}", timeout=180)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=240)  # a hang fails here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    lines = rest.splitlines()
    received = next(i for i, line in enumerate(lines) if "SIGTERM received" in line)
    window = f"cancer {start.isoformat()}..{end.isoformat()}: "
    stored = next(i for i, line in enumerate(lines) if window in line)
    assert received < stored, rest  # caught mid-run, and the run was finished, not dropped
    assert any("monitor daemon stopped" in line for line in lines[stored:]), rest
    with transaction(engine) as session:
        runs = list(session.scalars(select(Run).where(Run.window_start == start)))
    assert [(r.window_end, r.status != "failed") for r in runs] == [(end, True)]
