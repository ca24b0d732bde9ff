"""Calibrated nulls kept in a fit store: read back they give the very same verdicts, no
null is built twice, and a setting or a baseline that changes a null builds it again."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from monitor.config import DriftConfig
from monitor.drift import DriftAnalyzer
from monitor.drift.calibration import ColumnCalibration
from monitor.drift.fitted import fingerprint, pack, unpack
from monitor.errors import DriftError
from tests.drift.helpers import breast_cancer_frames


class MemoryFits:
    """A FitStore in a dict (the database's is tested in tests/store/test_fits.py)."""

    def __init__(self):
        self.rows: dict[tuple[str, str, str], bytes] = {}

    def load(self, check, key, fingerprint):
        return self.rows.get((check, key, fingerprint))

    def save(self, check, key, fingerprint, payload):
        self.rows.setdefault((check, key, fingerprint), payload)


@pytest.fixture
def builds(monkeypatch):
    """How many nulls were built (a spy on the build function)."""
    calls: list[tuple[str, int]] = []
    build = ColumnCalibration._build

    def spy(self, method, n):
        calls.append((method, n))
        return build(self, method, n)

    monkeypatch.setattr(ColumnCalibration, "_build", spy)
    return calls


@pytest.fixture(scope="module")
def frames():
    return breast_cancer_frames(400, 300, shift=0.3, seed=4)


def _analyzer(frames, fits, **config):
    analyzer = DriftAnalyzer(frames.numeric, frames.categorical, DriftConfig(**config), "regression",
                             seed=3, fits=fits)
    return analyzer.fit(frames.reference)


def _verdicts(report):
    return {
        name: (f.score, f.p_value, f.alpha, f.threshold, f.drifted, f.min_detectable_shift)
        for name, f in report.features.items()
    }


def test_a_second_analyzer_on_the_same_store_builds_nothing_and_decides_the_same(frames, builds):
    fits = MemoryFits()
    cold = _verdicts(_analyzer(frames, fits).analyze(frames.current))
    built = len(builds)
    assert built > 0 and len(fits.rows) == built
    assert {check for check, _, _ in fits.rows} == {"drift"}

    warm = _verdicts(_analyzer(frames, fits).analyze(frames.current))
    assert len(builds) == built, "the warm analyzer built a null the store holds"
    assert warm == cold  # exactly: same p-values, levels, thresholds and shifts
    assert any(v[4] for v in cold.values()), "the shifted window should drift somewhere"

    without = _verdicts(_analyzer(frames, None).analyze(frames.current))
    assert without == cold


@pytest.mark.parametrize(
    "change",
    [{"calibration_resamples": 200}, {"features": {"mean radius": {"method": "psi"}}}],
    ids=["resamples", "method"],
)
def test_a_setting_that_changes_the_nulls_builds_them_again(frames, builds, change):
    fits = MemoryFits()
    _analyzer(frames, fits).analyze(frames.current)
    before = len(builds)
    _analyzer(frames, fits, **change).analyze(frames.current)
    assert len(builds) > before


def test_another_baseline_or_seed_finds_no_stored_null(frames, builds):
    fits = MemoryFits()
    _analyzer(frames, fits).analyze(frames.current)
    before = len(builds)
    other = breast_cancer_frames(400, 300, shift=0.3, seed=5)
    _analyzer(other, fits).analyze(frames.current)
    assert len(builds) > before
    before = len(builds)
    reseeded = DriftAnalyzer(frames.numeric, frames.categorical, DriftConfig(), "regression",
                             seed=4, fits=fits).fit(frames.reference)
    reseeded.analyze(frames.current)
    assert len(builds) > before


def test_an_unreadable_stored_null_is_built_again_with_a_warning(frames, builds, caplog):
    fits = MemoryFits()
    cold = _verdicts(_analyzer(frames, fits).analyze(frames.current))
    for key in fits.rows:
        fits.rows[key] = b"not an npz"
    before = len(builds)
    with caplog.at_level(logging.WARNING, logger="monitor.drift.calibration"):
        warm = _verdicts(_analyzer(frames, fits).analyze(frames.current))
    assert len(builds) > before and warm == cold
    assert "unreadable" in caplog.text


def test_a_kept_analyzer_learns_its_store_later(frames, builds):
    """The daemon's analyzer may exist before the cycle hands it the store."""
    fits = MemoryFits()
    analyzer = _analyzer(frames, None)
    analyzer.prepare(300)
    assert not fits.rows
    analyzer.keep_fits_in(fits)
    analyzer.analyze(frames.current.iloc[:200])
    assert fits.rows, "nulls built after keep_fits_in are kept"


def test_payloads_refuse_pickles_and_fingerprints_tell_types_apart():
    payload = pack({"a": np.arange(3.0)})
    assert unpack(payload, ("a",))["a"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(DriftError, match="unreadable"):
        unpack(payload, ("b",))
    import io

    buffer = io.BytesIO()
    np.savez(buffer, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DriftError, match="unreadable"):
        unpack(buffer.getvalue(), ("a",))
    assert fingerprint(1, np.array([1])) != fingerprint(1, np.array([1.0]))
    assert fingerprint("a", "b") != fingerprint("ab")
    assert fingerprint([1, 2]) == fingerprint((1, 2)) != fingerprint([1, 2, 3])
