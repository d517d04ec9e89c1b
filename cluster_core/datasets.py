"""Real datasets shipped by installed packages, written as Parquet: the demo's Palmer penguins."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

DEMO_EXCLUDE = ["species", "year", "sex"]
DEMO_QUESTION = (
    "the demo asks which kinds of penguin there are: it clusters the four body measurements and the "
    "island, and leaves out species (the answer key, used only to check the result), year (when a bird "
    "was measured) and sex (it splits every kind in two: with it the data's groups are kind x sex; "
    "`clustra train DIR --exclude species,year` keeps it)"
)


def write_penguins(directory: Path) -> Path:
    """Write the penguins as hive-partitioned Parquet (``island=.../part-0.parquet``).

    344 rows: numeric measurements, categorical island and sex, missing values in
    five columns, plus the species (kept out of training, used to check the result).
    """
    from palmerpenguins import load_penguins

    frame = load_penguins()
    data = directory / "penguins"
    if data.exists():
        shutil.rmtree(data)
    for island, rows in frame.groupby("island"):
        part = data / f"island={island}"
        part.mkdir(parents=True)
        rows.drop(columns="island").to_parquet(part / "part-0.parquet", index=False)
    return data


def species_agreement(scored_dir: Path) -> float:
    """Adjusted Rand index of the applied clusters against the penguins' species."""
    from sklearn.metrics import adjusted_rand_score

    scored = pd.read_parquet(scored_dir)
    return float(adjusted_rand_score(scored["species"], scored["cluster_id"]))
