"""config.toml -> settings: valid files load, every mistake names the file and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.config import load_settings, parse_duration, parse_schedule, settings_from_dict
from monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """
[[models]]
name = "m"
path = "model.keras"
task = "regression"
[models.features]
numeric = ["a", "b"]
"""


def test_repository_example_config_is_valid():
    settings = load_settings(REPO / "config.toml", env={})
    model = settings.model("diagnosis")
    assert model.window == timedelta(hours=1)
    assert model.features.categorical == ("clinic",)
    # relative paths resolve against the config file's directory
    assert model.path == (REPO / "demo-output" / "model.keras").resolve()
    assert settings.database.url == f"sqlite:///{(REPO / 'demo-output' / 'monitor.db').resolve()}"


def test_minimal_config_gets_documented_defaults(write_config):
    settings = load_settings(write_config(MINIMAL), env={})
    assert settings.server.host == "127.0.0.1" and settings.server.port == 8765
    assert settings.server.max_future_skew == timedelta(minutes=5)
    assert settings.slack.enabled is False and settings.slack.mode == "socket"
    model = settings.models[0]
    assert (model.sample_size, model.source, model.schedule) == (2000, "log", "interval:15m")
    assert model.drift.drift_share == 0.5
    assert model.attribution.ndcg_threshold == 0.9
    assert model.alerts.shares.quality == 0.1 and model.alerts.shares.drift == 0.4
    # each check's own level is unset: it comes from the alert budget
    assert model.surrogate.alpha is None and model.reasons.p_value is None
    assert model.performance.ci_level is None and model.fairness.confidence is None


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param("[models.alerts.shares]\nquality = -0.5\n",
                     r"models\[0\]\.alerts\.shares\.quality: must be >= 0", id="negative-share"),
        pytest.param("[models.alerts.shares]\ndrift = 0\n",
                     r"models\[0\]\.alerts\.shares\.drift: must be > 0", id="drift-needs-a-rate"),
        pytest.param("[models.alerts.shares]\nfairnes = 0.2\n",
                     r"models\[0\]\.alerts\.shares\.fairnes: unknown key \(did you mean 'fairness'\?\)",
                     id="misspelled-family"),
        pytest.param("[models.alerts]\nquality_share = 0.1\n",
                     r"models\[0\]\.alerts\.quality_share: unknown key", id="quality-share-is-gone"),
    ],
)
def test_alert_shares_are_checked(write_config, table, expected):
    with pytest.raises(ConfigError, match=expected):
        load_settings(write_config(MINIMAL + table), env={})


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(("sample_size = 2000", "sample_size = -5"),
                     "models[0].sample_size: must be > 0, got -5", id="negative-sample-size"),
        pytest.param(("sample_size = 2000", "sampel_size = 10"),
                     "models[0].sampel_size: unknown key (did you mean 'sample_size'?)",
                     id="misspelled-key"),
        pytest.param(("window = \"15m\"", "window = \"soon\""),
                     "models[0].window: must be a duration", id="bad-duration"),
        pytest.param(("port = 8765", "port = 8765\nmax_future_skew = \"later\""),
                     "server.max_future_skew: must be a duration", id="bad-future-skew"),
        pytest.param(("schedule = \"interval:15m\"", "schedule = \"* * *\""),
                     "models[0].schedule: must be 'interval:<duration>' or a 5-field cron",
                     id="bad-schedule"),
        pytest.param(("task = \"regression\"", "task = \"ranking\""),
                     "models[0].task: must be one of", id="unknown-task"),
        pytest.param(("port = 8765", "port = 70000"), "server.port: must be <= 65535, got 70000",
                     id="port-range"),
        pytest.param(("[server]", "[sever]"), "sever: unknown key (did you mean 'server'?)",
                     id="misspelled-section"),
        pytest.param(("numeric = [\"a\", \"b\"]", "numeric = []"),
                     "models[0].features: at least one numeric or categorical feature",
                     id="no-features"),
        pytest.param(("source = \"log\"", "source = \"files\""),
                     "models[0].files: a [models.files] table is required", id="files-without-table"),
    ],
)
def test_mistakes_name_file_and_key(write_config, edit, expected):
    body = """
[server]
port = 8765
[[models]]
name = "m"
path = "model.keras"
task = "regression"
window = "15m"
schedule = "interval:15m"
sample_size = 2000
source = "log"
[models.features]
numeric = ["a", "b"]
"""
    assert edit[0] in body
    path = write_config(body.replace(edit[0], edit[1]))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert f"{path}: {expected}" in str(info.value)


def test_all_problems_are_reported_at_once(write_config):
    body = MINIMAL.replace('task = "regression"', 'task = "x"\nsample_size = 0\nbogus = 1')
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(body), env={})
    assert len(info.value.problems) == 3


def test_invalid_toml_and_missing_file_are_clear(write_config, tmp_path):
    with pytest.raises(ConfigError, match=r"invalid TOML"):
        load_settings(write_config("[database\nurl = 1"), env={})
    with pytest.raises(ConfigError, match=r"not found \(pass --config PATH or set MONITOR_CONFIG\)"):
        load_settings(tmp_path / "nope.toml", env={})


def test_environment_overrides_and_secrets(write_config):
    env = {
        "MONITOR_DATABASE_URL": "postgresql://u:hunter2@db/monitor",
        "MONITOR_INGEST_TOKEN": "tok-123456",
        "SLACK_BOT_TOKEN": "xoxb-1-abc",
    }
    settings = load_settings(write_config(MINIMAL), env=env)
    assert settings.database.url == "postgresql://u:hunter2@db/monitor"
    assert settings.secrets.ingest_token.get_secret_value() == "tok-123456"
    shown = str(settings.masked())
    assert "hunter2" not in shown and "tok-123456" not in shown and "xoxb-1-abc" not in shown
    assert settings.masked()["secrets"]["slack_bot_token"] == "set (masked)"


def test_secrets_are_refused_in_the_file(write_config):
    body = MINIMAL + '\n[slack]\nbot_token = "xoxb-in-file"\n'
    with pytest.raises(ConfigError, match=r"slack.bot_token: unknown key"):
        load_settings(write_config(body), env={})


def test_settings_are_frozen(write_config):
    settings = load_settings(write_config(MINIMAL), env={})
    with pytest.raises(Exception, match="frozen"):
        settings.models[0].sample_size = 5  # type: ignore[misc]


def test_duplicate_models_and_unknown_drift_method():
    model = {"name": "m", "path": "x", "task": "regression", "features": {"numeric": ["a"]}}
    with pytest.raises(ConfigError, match="names must be unique"):
        settings_from_dict({"models": [model, model]}, env={})
    bad = {**model, "drift": {"method": "kolmogorov"}}
    with pytest.raises(ConfigError, match=r"models\[0\].drift.method: unknown drift method"):
        settings_from_dict({"models": [bad]}, env={})


def test_unknown_model_lists_configured(write_config):
    settings = load_settings(write_config(MINIMAL), env={})
    with pytest.raises(ConfigError, match=r"no model named 'x' \(configured: m\)"):
        settings.model("x")


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


def test_parse_schedule():
    assert parse_schedule("interval:5m") == ("interval", timedelta(minutes=5))
    assert parse_schedule("*/15 * * * *")[0] == "cron"
    with pytest.raises(ValueError):
        parse_schedule("interval:0m")


def test_misspelled_models_table_is_named_before_its_consequences(write_config):
    body = """
[[model]]
name = "m"
path = "model.keras"
task = "regression"
[models.features]
numeric = ["a"]
"""
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(body), env={})
    problems = info.value.problems
    assert problems[0].endswith("model: unknown key (did you mean 'models'?)")
    assert "[[models]]" in problems[1]
# -- secrets in URLs (issue 11 item 5) ------------------------------------------------

SECRET = "Sup3rS3cret"
LEAKY_URLS = {
    "query": f"postgresql://postgres@127.0.0.1:1/db?password={SECRET}&sslmode=disable",
    "query-last": f"postgresql://postgres@127.0.0.1:1/db?password={SECRET}",
    "space": f"postgresql://postgres:my {SECRET}@127.0.0.1:1/db",
    "at-sign": f"postgresql://postgres:p@{SECRET}@127.0.0.1:1/db",
    "colon-and-at": f"postgresql://postgres:a:b@{SECRET}@@127.0.0.1:1/db",
    "webhook-userinfo": f"https://user:{SECRET}@hooks.example.com/services/x",
    "web-token-user": f"https://{SECRET}@example.com/x",
    "libpq": f"host=127.0.0.1 password={SECRET} dbname=x",
}


@pytest.mark.parametrize("url", LEAKY_URLS.values(), ids=LEAKY_URLS.keys())
def test_mask_url_hides_every_credential(url):
    from monitor.config import mask_url
    from monitor.logs import mask

    assert SECRET not in mask_url(url)
    assert SECRET not in mask(f"cannot connect to {url}: connection refused")
    assert "***" in mask_url(url)


def test_mask_url_keeps_what_is_not_secret():
    from monitor.config import mask_url

    url = "postgresql+psycopg://monitor@db.internal:5432/monitor?sslmode=require"
    assert mask_url(url) == url
    assert mask_url("sqlite:///var/lib/monitor.db") == "sqlite:///var/lib/monitor.db"
    assert mask_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert mask_url("http://127.0.0.1:8765/v1") == "http://127.0.0.1:8765/v1"


def test_log_filter_masks_url_passwords(write_config):
    import io
    import logging

    from monitor.config import mask_url
    from monitor.logs import configure

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure("INFO", stream=stream)
    try:
        logging.getLogger("monitor.test").warning("db is %s", LEAKY_URLS["query"])
        logging.getLogger("monitor.test").warning("db is %s", LEAKY_URLS["space"])
        # a URL masked already keeps the rest of its line
        logging.getLogger("monitor.test").warning("db %s down", mask_url(LEAKY_URLS["query-last"]))
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    shown = stream.getvalue()
    assert SECRET not in shown and "password=***" in shown
    assert "password=*** down" in shown


@pytest.mark.parametrize("json_flag", [False, True], ids=["text", "json"])
def test_config_check_masks_query_passwords(write_config, run_monitor, json_flag):
    path = write_config(MINIMAL)
    env = {"MONITOR_DATABASE_URL": LEAKY_URLS["query"], "MONITOR_CONFIG": str(path)}
    args = ["config", "check", *(["--json"] if json_flag else [])]
    proc = run_monitor(*args, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert "password=***" in proc.stdout


@pytest.mark.parametrize("kind", ["query", "space", "at-sign"])
def test_cannot_connect_error_masks_the_password(write_config, run_monitor, kind):
    env = {"MONITOR_DATABASE_URL": LEAKY_URLS[kind], "MONITOR_CONFIG": str(write_config(MINIMAL))}
    proc = run_monitor("db", "current", env=env, timeout=120)
    assert proc.returncode != 0
    assert "cannot connect" in proc.stderr or "unreachable" in proc.stderr, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr


def test_db_commands_mask_a_query_password(write_config, run_monitor, fresh_pg_url):
    # the local PostgreSQL trusts every password: the query parameter is really sent
    url = fresh_pg_url + ("&" if "?" in fresh_pg_url else "?") + f"password={SECRET}"
    env = {"MONITOR_DATABASE_URL": url, "MONITOR_CONFIG": str(write_config(MINIMAL))}
    upgraded = run_monitor("db", "upgrade", env=env, timeout=300)
    assert upgraded.returncode == 0, upgraded.stderr
    current = run_monitor("db", "current", env=env, timeout=120)
    assert current.returncode == 0, current.stderr
    shown = upgraded.stdout + upgraded.stderr + current.stdout + current.stderr
    assert SECRET not in shown
    assert "password=***" in current.stdout and "(head)" in current.stdout
