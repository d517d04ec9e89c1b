"""Per-model inference caches and the light input check (issue 20): outputs bit for bit as the
uncached computations give them, caches renewed on refit and load, never pickled or saved, and
scikit-learn's input errors unchanged."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils.validation import validate_data

from cluster_core.algorithms import HDBSCAN, GaussianMixture, Genie, KMeans
from cluster_core.algorithms.hdbscan import approximate_predict
from cluster_core.distance import unit_rows
from cluster_core.kernels.gmm import _em_chunk_rows, _moments, _params
from cluster_core.kernels.kmeans import assign_nearest
from cluster_core.kernels._torch import matmul, to_numpy, to_tensor


def _table(n: int = 1500, seed: int = 0) -> np.ndarray:
    """Four continuous columns around three centres, a one-hot block of three and a flag (two-valued)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n)
    continuous = rng.normal(0, 1, (n, 4)) + rng.normal(0, 5, (3, 4))[group]
    one_hot = np.eye(3)[(group + rng.integers(0, 2, n)) % 3]
    flag = (rng.random(n) < 0.2 + 0.3 * group).astype(float)[:, None]
    return np.hstack([continuous, one_hot, flag]).astype(np.float32)


def _queries(data: np.ndarray, seed: int = 1) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(0, 6, (64, data.shape[1])).astype(np.float32)
    rows[:32] = data[:32]
    return rows


def _inputs(rows: np.ndarray) -> list:
    """The same rows as the light check takes them (C-contiguous float32 / float64, one row, 16 rows)
    and as only validate_data takes them (Fortran order, a list)."""
    return [rows, rows.astype(np.float64), rows[:1], rows[5:21], np.asfortranarray(rows), rows.tolist()]


def _old_log_gaussian(x, means, prec_chol, covariance_type):
    """``kernels.gmm._log_gaussian`` as it was before the per-model cache (every term per call)."""
    n, d = x.shape
    if d == 0:
        return torch.zeros((n, means.shape[0]), dtype=x.dtype, device=x.device)
    if covariance_type == "full":
        precision = prec_chol @ prec_chol.transpose(1, 2)
        outer = _moments(x, covariance_type)
        precision_means = torch.einsum("kde,ke->kd", precision, means)
        out = matmul(outer, precision.reshape(-1, d * d).T)
        out -= 2.0 * matmul(x, precision_means.T)
        out += (means * precision_means).sum(dim=1).unsqueeze(0)
        out.clamp_(min=0.0)
        log_det = torch.log(torch.diagonal(prec_chol, dim1=1, dim2=2)).sum(dim=1)
    else:
        precision = prec_chol * prec_chol
        out = matmul(_moments(x, covariance_type), torch.cat([-2.0 * means * precision, precision], dim=1).T)
        out += (means * means * precision).sum(dim=1).unsqueeze(0)
        log_det = torch.log(prec_chol).sum(dim=1)
    return -0.5 * (d * math.log(2 * math.pi) + out) + log_det.unsqueeze(0)


def _old_log_resp(model: GaussianMixture, array: np.ndarray):
    """The mixture's ``log_responsibilities`` as it was before the per-model cache: every tensor made per call."""
    two_valued = model._two_valued(model.bernoulli_)
    means = model.means_ if two_valued is None else model.means_[:, model._continuous_columns()]
    x_all = to_tensor(array, "cpu", torch.float64)
    binary = None
    if two_valued is not None:
        x_all, binary = two_valued.split(x_all)
        log_odds, log_q = two_valued.log_terms("cpu")
    w, mu, pc = _params(model.weights_, means, model.precisions_cholesky_, "cpu")
    origin = mu.mean(dim=0)
    mu = mu - origin
    log_w = torch.log(w).unsqueeze(0)
    step = _em_chunk_rows(x_all.shape[0], mu.shape[0], mu.shape[1], model.covariance_type)
    log_resp, norms = [], []
    for start in range(0, x_all.shape[0], step):
        weighted = _old_log_gaussian(x_all[start : start + step] - origin, mu, pc, model.covariance_type) + log_w
        if binary is not None:
            weighted += matmul(binary[start : start + step], log_odds.T) + log_q.unsqueeze(0)
        norm = torch.logsumexp(weighted, dim=1)
        log_resp.append(weighted - norm.unsqueeze(1))
        norms.append(norm)
    return to_numpy(torch.cat(log_resp)), to_numpy(torch.cat(norms))


def _same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_kmeans_outputs_bit_for_bit(metric):
    data = _table()
    model = KMeans(5, random_state=0, device="cpu", metric=metric).fit(data)
    for x in _inputs(_queries(data)):
        array = np.ascontiguousarray(np.asarray(x, np.float32))
        if metric == "cosine":
            array = unit_rows(np.asarray(x))  # unit rows as inference has always made them
        labels, sqdist = assign_nearest(array, model.cluster_centers_, "cpu")  # centres prepared per call
        wide, centers = array.astype(np.float64), model.cluster_centers_.astype(np.float64)
        if metric == "cosine":
            matrix = np.clip(1.0 - wide @ centers.T, 0.0, 2.0)
            distance = np.clip(1.0 - np.einsum("ij,ij->i", array, model.cluster_centers_[labels], dtype=np.float64), 0.0, 2.0)
        else:
            sq = (wide**2).sum(1)[:, None] - 2 * wide @ centers.T + (centers**2).sum(1)[None, :]
            matrix, distance = np.sqrt(np.maximum(sq, 0.0)), np.sqrt(sqdist)
        for _ in range(2):  # a cold and a warm cache
            result = model.assign(x)
            assert _same(result.labels, labels) and _same(result.distance, distance)
            assert _same(model.transform(x), matrix)
            detail_result, detail = model.assign_detail(x)
            assert _same(detail_result.labels, labels) and _same(detail_result.distance, distance)
            assert _same(detail, matrix)
            assert model.score(x) == -float(sqdist.astype(np.float64).sum())


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("discrete", ["auto", None, "all"])
def test_mixture_outputs_bit_for_bit(covariance_type, discrete):
    data = _table()
    if discrete == "all":  # every column two-valued: no Gaussian part at all
        data = data[:, 4:]
        discrete = "auto"
    model = GaussianMixture(3, covariance_type=covariance_type, discrete_features=discrete, random_state=0,
                            device="cpu").fit(data)
    assert len(model.discrete_features_) == (0 if discrete is None else 4)
    for x in _inputs(_queries(data)):
        log_resp, norm = _old_log_resp(model, np.ascontiguousarray(np.asarray(x, np.float32)))
        labels = log_resp.argmax(axis=1).astype(np.int64)
        for _ in range(2):
            result = model.assign(x)
            assert _same(result.labels, labels)
            assert _same(result.probability, np.exp(log_resp[np.arange(len(labels)), labels]))
            assert _same(model.predict_proba(x), np.exp(log_resp))
            assert _same(model.score_samples(x), norm)
            detail_result, proba = model.assign_detail(x)
            assert _same(detail_result.labels, labels) and _same(detail_result.probability, result.probability)
            assert _same(proba, np.exp(log_resp))


def test_hdbscan_and_genie_outputs_bit_for_bit():
    data = _table()
    hdb = HDBSCAN(min_cluster_size=40, random_state=0, device="cpu").fit(data)
    genie = Genie(3, random_state=0, device="cpu").fit(data)
    assert hdb.n_clusters_ >= 2
    for x in _inputs(_queries(data)):
        array = np.ascontiguousarray(np.asarray(x, np.float32))
        labels, probability = approximate_predict(hdb._prediction_state(), array, hdb.neighbor_index_)  # tree per call
        _, nearest = genie.neighbor_index_.query(array, 1)
        for _ in range(2):
            result = hdb.assign(x)
            assert _same(result.labels, labels) and _same(result.probability, probability)
            assert _same(genie.assign(x).labels, genie.fit_labels_[nearest[:, 0]])


@pytest.mark.parametrize("make", [
    lambda: KMeans(3, random_state=0, device="cpu"),
    lambda: GaussianMixture(3, random_state=0, device="cpu"),
    lambda: HDBSCAN(min_cluster_size=40, random_state=0, device="cpu"),
    lambda: Genie(3, random_state=0, device="cpu"),
], ids=["kmeans", "gmm", "hdbscan", "genie"])
def test_refit_and_load_renew_the_cache(make):
    first, second = _table(seed=0), _table(seed=5) * 3.0 + 7.0
    rows = _queries(second)
    model = make().fit(first)
    stale = model.assign(rows)
    cache = model._inference_cache
    assert cache.entries or isinstance(model, Genie)  # Genie keeps nothing beyond its neighbour index
    model.fit(second)
    assert model._inference_cache is not cache  # a fit starts a new cache
    fresh = make().fit(second).assign(rows)
    refit = model.assign(rows)
    assert _same(refit.labels, fresh.labels)
    if not isinstance(model, Genie):
        assert not (_same(refit.labels, stale.labels) and (refit.probability is None
                    or _same(refit.probability, stale.probability)) and (refit.distance is None
                    or _same(refit.distance, stale.distance)))
    # a stale entry is never used, even when nobody cleared it: the fitted arrays it came from are gone
    model.__dict__["_inference_cache"] = cache
    assert _same(model.assign(rows).labels, fresh.labels)
    # loaded from its state (JSON + arrays): the same numbers, no cache carried along
    state = model.get_state()
    assert "_inference_cache" not in str(state)
    loaded = type(model).from_state(state)
    again = loaded.assign(rows)
    assert _same(again.labels, refit.labels)
    for part in ("probability", "distance"):
        if getattr(refit, part) is not None:
            assert _same(getattr(again, part), getattr(refit, part))


def test_cache_is_not_pickled():
    data = _table()
    model = GaussianMixture(3, random_state=0, device="cpu").fit(data)
    expected = model.predict_proba(data[:10])
    assert model._inference_cache.entries
    copy = pickle.loads(pickle.dumps(model))
    assert "_inference_cache" not in copy.__dict__
    assert "_inference_cache" in model.__dict__  # pickling did not empty the original either
    assert _same(copy.predict_proba(data[:10]), expected)


def test_kmeans_cache_follows_the_device_and_the_centres():
    data = _table()
    model = KMeans(3, random_state=0, device="cpu").fit(data)
    model.assign(data[:4])
    first = model._prepared_centers()
    assert model._prepared_centers() is first
    model.cluster_centers_ = model.cluster_centers_ + 1.0  # new centres set by hand: prepared again
    assert model._prepared_centers() is not first
    labels, sqdist = assign_nearest(data[:50], model.cluster_centers_, "cpu")
    assert _same(model.assign(data[:50]).labels, labels)
    assert _same(model.assign(data[:50]).distance, np.sqrt(sqdist))


def _error(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return type(exc), str(exc)
    return None


def test_input_errors_are_scikit_learns():
    data = _table()
    model = KMeans(3, random_state=0, device="cpu").fit(data)
    nan, inf = data[:2].copy(), data[:2].copy()
    nan[1, 0], inf[1, 0] = np.nan, np.inf
    for bad in (np.zeros((1, 3), np.float32), nan, inf, np.zeros((0, 8), np.float32), np.zeros(8, np.float32),
                np.zeros((1, 3), np.float64), nan.astype(np.float64)):
        expected = _error(lambda: validate_data(model, bad, dtype=[np.float32, np.float64], reset=False))
        assert expected is not None and expected[0] is ValueError
        assert _error(lambda: model.assign(bad)) == expected
        assert _error(lambda: model.transform(bad)) == expected
    assert "X has 3 features, but KMeans is expecting 8 features" in _error(lambda: model.assign(np.zeros((1, 3))))[1]
    assert "Input X contains NaN" in _error(lambda: model.assign(nan))[1]
    # huge finite values whose sum overflows are still accepted (scikit-learn rechecks element-wise)
    big = np.full((2, 8), np.finfo(np.float32).max / 2, np.float32)
    with np.errstate(all="ignore"):
        assert model.assign(big).labels.shape == (2,)


def test_fitted_with_feature_names_still_warns_on_arrays():
    data = _table()
    frame = pd.DataFrame(data, columns=[f"c{i}" for i in range(data.shape[1])])
    model = KMeans(3, random_state=0, device="cpu").fit(frame)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = model.assign(data[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _same(model.assign(frame.iloc[:1]).labels, from_array.labels)


def test_served_model_answers_from_one_pass(monkeypatch):
    """ServedModel asks KMeans and GaussianMixture once per request (assign_detail), with the numbers
    that assign + transform / predict_proba give."""
    from serving.assign import ServedModel

    data = _table()
    for model in (KMeans(3, random_state=0, device="cpu").fit(data), GaussianMixture(3, random_state=0, device="cpu").fit(data)):
        has_distance = isinstance(model, KMeans)
        served = ServedModel.__new__(ServedModel)
        served.model = type("M", (), {"estimator": model, "has_distance": has_distance,
                                      "has_probability": not has_distance, "n_clusters": 3})()
        served._names = ["a", "b", "c"]
        served.scalar, served.detail = ("distance", "distances") if has_distance else ("probability", "probabilities")
        rows = _queries(data)[:5]
        expected_result = model.assign(rows)
        expected_detail = model.transform(rows) if has_distance else model.predict_proba(rows)
        calls = []
        monkeypatch.setattr(type(model), "assign", lambda self, X: calls.append(X) or pytest.fail("assign called"))
        answers = served.feature_assignments(rows)
        monkeypatch.undo()
        assert not calls
        assert [a["cluster_id"] for a in answers] == expected_result.labels.tolist()
        scalars = expected_result.distance if has_distance else expected_result.probability
        assert [a[served.scalar] for a in answers] == scalars.tolist()
        assert [a[served.detail] for a in answers] == expected_detail.tolist()
        assert all(math.isfinite(v) for a in answers for v in a[served.detail])
