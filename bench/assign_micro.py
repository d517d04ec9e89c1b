"""In-process cost of one estimator call on small and bulk inputs (issue 20: single-record serving).

Fits KMeans, GaussianMixture (with two-valued columns, so discrete emissions), HDBSCAN and
Genie on one fixed synthetic table, then times, per model, ``assign`` and the serving pair
(``assign`` plus ``transform`` or ``predict_proba``: what ``ServedModel.feature_assignments``
asks for) on 1, 16 and 1,000 rows (different rows on every call): the best of several rounds of ``timeit``, in microseconds per
call. ``--digest DIR`` prints a SHA-256 of every output instead, to compare two versions bit for
bit: the models are saved to DIR on the first run (``get_state``: JSON + npz) and loaded from it on
later runs, and ``CLUSTRA_CPU_GEMM=numpy`` fixes the GEMM library (its timing calibration can pick
either, whose last bits differ).

    PYTHONPATH=. .venv/bin/python bench/assign_micro.py [--digest DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import timeit

import numpy as np

from _common import ROOT  # noqa: F401 - puts the repository on sys.path

from cluster_core.algorithms import HDBSCAN, GaussianMixture, Genie, KMeans

SIZES = (1, 16, 1000)


def table(n: int = 20_000, seed: int = 0) -> np.ndarray:
    """Six continuous columns around four centres, a one-hot block of three and a flag."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, n)
    continuous = rng.normal(0, 1, (n, 6)) + rng.normal(0, 4, (4, 6))[group]
    one_hot = np.eye(3)[(group + rng.integers(0, 2, n)) % 3]
    flag = (rng.random(n) < 0.2 + 0.15 * group).astype(float)[:, None]
    return np.hstack([continuous, one_hot, flag]).astype(np.float32)


def models(data: np.ndarray) -> dict:
    """The fitted estimators, by name (CPU, fixed seeds)."""
    return {
        "kmeans": KMeans(8, random_state=0, device="cpu").fit(data),
        "gmm-full": GaussianMixture(8, random_state=0, device="cpu").fit(data),
        "gmm-diag": GaussianMixture(8, covariance_type="diag", random_state=0, device="cpu").fit(data),
        "hdbscan": HDBSCAN(max_fit_samples=5000, random_state=0, device="cpu").fit(data),
        "genie": Genie(4, max_fit_samples=5000, random_state=0, device="cpu").fit(data),
    }


def serving_pair(model, rows: np.ndarray):
    """What the serving path computes for a request's rows."""
    if hasattr(model, "assign_detail"):
        return model.assign_detail(rows)
    result = model.assign(rows)
    if isinstance(model, KMeans):
        return result, model.transform(rows)
    if hasattr(model, "predict_proba"):
        return result, model.predict_proba(rows)
    return result, None


def per_call_us(fn, budget_s: float = 0.25, rounds: int = 5) -> float:
    """Best of ``rounds`` timeit runs, in microseconds per call."""
    fn()
    number = max(1, int(budget_s / rounds / max(timeit.timeit(fn, number=1), 1e-6)))
    return min(timeit.repeat(fn, number=number, repeat=rounds)) / number * 1e6


def saved_models(directory: str, data: np.ndarray) -> dict:
    """The models of :func:`models`, fitted and saved to ``directory`` once, then loaded from it."""
    from cluster_core._state import read_state, write_state

    classes = {"kmeans": KMeans, "gmm-full": GaussianMixture, "gmm-diag": GaussianMixture, "hdbscan": HDBSCAN,
               "genie": Genie}
    if not os.path.exists(os.path.join(directory, "kmeans.json")):
        os.makedirs(directory, exist_ok=True)
        for name, model in models(data).items():
            write_state(directory, name, model.get_state())
    return {name: cls.from_state(read_state(directory, name)) for name, cls in classes.items()}


def digests(fitted: dict, data: np.ndarray) -> dict:
    """SHA-256 of every inference output on fixed rows (float32 and float64 inputs)."""
    rows = np.random.default_rng(1).normal(0, 5, (300, data.shape[1])).astype(np.float32)
    rows[:150] = data[:150]
    out = {}
    for name, model in fitted.items():
        h = hashlib.sha256()
        for x in (rows, rows.astype(np.float64), rows[:1], rows[7:23]):
            result = model.assign(x)
            for part in result:
                if part is not None:
                    h.update(np.ascontiguousarray(part).tobytes())
            h.update(model.predict(x).tobytes())
            for method in ("transform", "predict_proba", "score_samples"):
                if hasattr(model, method):
                    h.update(np.ascontiguousarray(getattr(model, method)(x)).tobytes())
            if hasattr(model, "score"):
                h.update(np.float64(model.score(x)).tobytes())
        out[name] = h.hexdigest()[:16]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digest", metavar="DIR", help="print output digests of the models saved in DIR instead of timings")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    data = table()
    if args.digest:
        os.environ.setdefault("CLUSTRA_CPU_GEMM", "numpy")
        print(json.dumps(digests(saved_models(args.digest, data), data), indent=1))
        return
    fitted = models(data)
    results = []
    for name, model in fitted.items():
        for size in SIZES:
            # a different slice of rows on every call, as requests bring (the neighbour searches
            # of HDBSCAN and Genie remember recent answers)
            pool = [np.ascontiguousarray(data[start : start + size]) for start in range(0, data.shape[0] - size, 7)]
            rows = itertools.cycle(pool)
            results.append({
                "model": name,
                "rows": size,
                "assign_us": round(per_call_us(lambda: model.assign(next(rows))), 1),
                "serving_pair_us": round(per_call_us(lambda: serving_pair(model, next(rows))), 1),
            })
            print(json.dumps(results[-1]), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
