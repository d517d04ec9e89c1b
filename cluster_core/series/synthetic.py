"""A synthetic multiseries retail table with planted behaviours (tests, benchmarks, demos)."""

from __future__ import annotations

import numpy as np
import pandas as pd

BEHAVIOURS = ("flat", "trending", "weekly")


def retail_series(n_series: int = 300, days: int = 365, *, seed: int = 0, noise: float = 0.08,
                  missing: float = 0.05) -> pd.DataFrame:
    """Daily sales of ``n_series`` stores/items, a third each flat, trending up, weekly-seasonal.

    Levels span 10 to 1,000 (log-uniform); noise is ``noise`` times the level; each
    series starts up to 60 days (at most a quarter of ``days``) late (different lengths), loses ``missing`` of its days at
    random and a third of them a further 7-21 day block (gaps). Columns: ``store``,
    ``date``, ``sales``, ``behaviour`` (the planted truth, constant per series).
    """
    rng = np.random.default_rng(seed)
    frames = []
    start = np.datetime64("2024-01-01")
    for i in range(n_series):
        behaviour = BEHAVIOURS[i % 3]
        offset = int(rng.integers(0, min(60, days // 4) + 1))
        t = np.arange(offset, days)
        level = float(np.exp(rng.uniform(np.log(10), np.log(1000))))
        y = np.full(t.size, level)
        if behaviour == "trending":
            y = y * (1 + rng.uniform(0.5, 2.0) * (t - offset) / (days - offset))
        elif behaviour == "weekly":
            pattern = np.array([0.7, 0.8, 0.9, 1.0, 1.2, 1.6, 1.3])
            y = y * np.roll(pattern, int(rng.integers(0, 7)))[t % 7] * rng.uniform(0.8, 1.2)
        y = y + rng.normal(scale=noise * level, size=t.size)
        keep = rng.random(t.size) >= missing
        if i % 3 == (i // 3) % 3:  # a block gap in a third of the series
            gap = int(rng.integers(7, 22))
            at = int(rng.integers(1, max(2, t.size - gap - 1)))
            keep[at : at + gap] = False
        frames.append(pd.DataFrame({"store": f"s{i:05d}", "date": start + t[keep], "sales": y[keep], "behaviour": behaviour}))
    frame = pd.concat(frames, ignore_index=True)
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # rows in no particular order


__all__ = ["BEHAVIOURS", "retail_series"]
