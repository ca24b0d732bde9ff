"""Synthetic populations with protected attributes, for the fairness tests.

A person has a sex (F 40 %, M 60 %) and an age band (3 bands); the model's score is a
logistic function of a latent merit; the label is drawn from the same probability.
`penalty` lowers the scores of one sex's rows: the model turning against that group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def population(
    rows: int, seed: int, *, penalty: float = 0.0, penalized: str = "F", p_female: float = 0.4
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(attributes frame, P(favorable) scores, labels with 20 % not arrived)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], rows, p=[p_female, 1 - p_female])
    band = rng.choice(["18-40", "40-60", "60+"], rows, p=[0.4, 0.4, 0.2])
    merit = rng.normal(0, 1.5, rows)
    truth = 1 / (1 + np.exp(-merit))
    labels = (rng.uniform(size=rows) < truth).astype(float)
    labels[rng.uniform(size=rows) < 0.2] = np.nan
    scores = 1 / (1 + np.exp(-(merit - penalty * (sex == penalized))))
    return pd.DataFrame({"sex": sex, "age_band": band}), scores, labels
