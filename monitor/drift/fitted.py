"""Per-baseline fits kept between processes: where they go, their fingerprint, their bytes.

A fit is what an engine learns from the baseline alone (a drift test's resampled null
at a window size, the surrogate's bootstrap range): costly to build and the same every
time. An engine given a `FitStore` reads a fit before building it and hands back what it
built (`monitor.store.fits.BaselineFits` keeps them in the database, one row per
baseline, check, key and fingerprint). The fingerprint hashes every setting and every
datum the fit is built from, so a fit built under other settings is never read: it is
built again. Payloads are NumPy arrays in ``.npz`` bytes, read without pickle.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from monitor.errors import DriftError


class FitStore(Protocol):
    """Where an engine finds and keeps what it fitted on one baseline."""

    def load(self, check: str, key: str, fingerprint: str) -> bytes | None:
        """The payload kept for (check, key, fingerprint), None when there is none."""
        ...

    def save(self, check: str, key: str, fingerprint: str, payload: bytes) -> None:
        """Keep `payload` (a concurrent save of the same fit is not an error)."""
        ...


def fingerprint(*parts: object) -> str:
    """A SHA-256 hex digest of `parts`: strings, numbers, None, arrays and sequences of
    them (an array by its dtype, shape and bytes, so 1 and 1.0 differ only where the
    fit would)."""
    digest = hashlib.sha256()
    for part in parts:
        _feed(digest, part)
    return digest.hexdigest()


def _feed(digest: hashlib._Hash, part: object) -> None:
    if isinstance(part, np.ndarray):
        array = np.ascontiguousarray(part)
        if array.dtype.hasobject:
            _feed(digest, [repr(v) for v in array.tolist()])
            return
        digest.update(f"a{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    elif isinstance(part, list | tuple):
        digest.update(f"l{len(part)}(".encode())
        for item in part:
            _feed(digest, item)
        digest.update(b")")
    else:
        text = repr(part).encode()
        digest.update(f"s{len(text)}:".encode() + text)


def pack(arrays: Mapping[str, np.ndarray]) -> bytes:
    """`arrays` as ``.npz`` bytes (no pickled objects)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def unpack(payload: bytes, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays `names` of a `pack`ed payload; DriftError when one is missing or the
    bytes are not an ``.npz`` without pickled objects."""
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as stored:
            return {name: stored[name] for name in names}
    except (OSError, ValueError, KeyError) as err:
        raise DriftError(f"stored fit is unreadable ({err}); it is built again") from err
