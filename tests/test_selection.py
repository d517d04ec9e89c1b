"""Model choice: stability and its null, the recommendation, selection.json, --rank-by, --evaluate-against."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from cluster_core.selection import discrete_blocks, measure_stability, null_sample, recommend, selection_curves, selection_rule
from cluster_core.training import ModelResult, ModelSpec
from cluster_core.usecases import train_config, train_run
from clustra.cli._format import leaderboard_table, ordered_entries


def blobs_frame(n: int = 1200, centers: int = 4, seed: int = 0) -> pd.DataFrame:
    x, y = make_blobs(n, n_features=4, centers=centers, cluster_std=0.6, center_box=(-12, 12), random_state=seed)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    frame["truth"] = [f"g{v}" for v in y]
    return frame


def test_stability_is_high_on_clusters_and_the_null_has_none():
    from cluster_core.algorithms import KMeans

    x, _ = make_blobs(600, n_features=3, centers=4, cluster_std=0.5, center_box=(-10, 10), random_state=1)
    x = x.astype(np.float32)
    result = measure_stability(KMeans(4, n_init=3, device="cpu"), x, seed=0, pairs=2)
    assert result["stability"] > 0.95
    assert result["null_stability"] < result["stability"] - 0.2
    assert result["stability_excess"] == pytest.approx(result["stability"] - result["null_stability"], abs=1e-3)
    null = null_sample(x, 0)
    assert null.shape == x.shape
    np.testing.assert_allclose(np.cov(null.T), np.cov(x.T), rtol=0.25, atol=0.5)


def _stability_one_refit_after_another(template, sample, seed, pairs):
    """The stability computation as first written (each pair drawn and refitted in turn): the reference
    the shared-work version must reproduce exactly."""
    from sklearn.base import clone
    from sklearn.metrics import adjusted_rand_score

    n = sample.shape[0]
    size = int(round(0.75 * n))
    scores, rng = [], np.random.default_rng([seed, 7919])
    for pair in range(pairs):
        a = np.sort(rng.choice(n, size, replace=False))
        b = np.sort(rng.choice(n, size, replace=False))
        shared = np.intersect1d(a, b)
        labels = []
        for rows, refit_seed in ((a, seed + 2 * pair + 1), (b, seed + 2 * pair + 2)):
            estimator = clone(template).set_params(random_state=refit_seed)
            labels.append(np.asarray(estimator.fit(sample[rows]).predict(sample[shared])))
        scores.append(adjusted_rand_score(*labels))
    return float(np.mean(scores))


@pytest.mark.parametrize("algorithm", ["kmeans", "gmm"])
def test_stability_values_equal_those_of_refits_one_after_another(algorithm):
    from cluster_core.algorithms import GaussianMixture, KMeans

    rng = np.random.default_rng(3)
    group = rng.integers(0, 3, 700)
    x = np.hstack([np.eye(3)[group], group[:, None] * 3.0 + rng.normal(0, 1, (700, 3))]).astype(np.float32)
    names = ["plan=a", "plan=b", "plan=c", "spend", "visits", "tenure"]
    blocks = discrete_blocks(x, names)
    template = KMeans(3, n_init=2, device="cpu") if algorithm == "kmeans" else GaussianMixture(3, device="cpu")
    expected_data = _stability_one_refit_after_another(template, x, 5, 2)
    expected_null = _stability_one_refit_after_another(template, null_sample(x, 5, blocks), 5, 2)
    for _ in range(2):  # the second time the null sample comes from the sweep's cache
        result = measure_stability(template, x, 5, 2, blocks)
        assert result["stability"] == round(expected_data, 4)
        assert result["null_stability"] == round(expected_null, 4)
        assert result["stability_excess"] == round(expected_data - expected_null, 4)
    other = x.copy()  # an equal sample that is another object: its own null, the same values
    assert measure_stability(template, other, 5, 2, blocks) == result


def test_the_null_is_skipped_only_where_it_cannot_matter():
    """A model below MIN_STABILITY is not reproducible whatever its null: those refits are not run, the
    values are missing with the reason; the stability itself is the one measured with the null."""
    from cluster_core.algorithms import KMeans
    from cluster_core.selection import MIN_STABILITY, null_skip_reason, reproducible

    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 3)).astype(np.float32)  # no clusters: k-means at k = 7 is not stable
    template = KMeans(7, n_init=1, device="cpu")
    skipped = measure_stability(template, x, 2, 2)
    full = measure_stability(template, x, 2, 2, skip_null_below=None)
    assert full["stability"] == skipped["stability"] < MIN_STABILITY
    assert full["null_stability"] is not None and full["null_stability_skipped"] is None
    assert skipped["null_stability"] is None and skipped["stability_excess"] is None
    assert skipped["null_stability_skipped"].startswith(f"stability {skipped['stability']} < {MIN_STABILITY}")
    assert not reproducible(full) and not reproducible(skipped)
    # the threshold reads the stored (rounded) value, as reproducible() does
    assert null_skip_reason(MIN_STABILITY - 4e-5) is None and null_skip_reason(MIN_STABILITY - 6e-5) is not None
    assert null_skip_reason(None) is not None
    stable = measure_stability(KMeans(2, n_init=1, device="cpu"), np.vstack([x[:250] - 6, x[250:] + 6]), 2, 2)
    assert stable["stability"] >= MIN_STABILITY and stable["null_stability"] is not None
    assert stable["null_stability_skipped"] is None


def _mixed_frame(n: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 3, n)
    return pd.DataFrame({"spend": segment * 3.0 + rng.normal(0, 1, n), "visits": rng.gamma(2.0, 2.0, n) + segment,
                         "plan": np.where(rng.random(n) < 0.8, np.array(["a", "b", "c"])[segment], "a"),
                         "member": segment == 2})


@pytest.mark.parametrize("table", ["blobs", "mixed", "noise"])
def test_the_recommendation_is_the_same_with_and_without_the_null_skip(table, monkeypatch):
    import functools

    import cluster_core.selection as selection

    rng = np.random.default_rng(1)
    frame = {"blobs": lambda: blobs_frame(600, centers=3).drop(columns="truth"), "mixed": _mixed_frame,
             "noise": lambda: pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])}[table]()
    config = train_config(algorithms=["kmeans", "gmm"], k=list(range(2, 7)), seed=1, insights=False)
    skipped = train_run(frame, config, cluster="inprocess").leaderboard()
    monkeypatch.setattr(selection, "measure_stability",
                        functools.partial(selection.measure_stability, skip_null_below=None))
    full = train_run(frame, config, cluster="inprocess").leaderboard()
    assert (skipped["recommended"], skipped["recommended_reason"]) == (full["recommended"], full["recommended_reason"])
    assert any(e["null_stability_skipped"] for e in skipped["models"])  # the skip was exercised
    for a, b in zip(skipped["models"], full["models"]):
        assert a["model_id"] == b["model_id"] and a["stability"] == b["stability"] and b["null_stability_skipped"] is None
        if a["null_stability_skipped"]:
            assert a["stability"] < selection.MIN_STABILITY and a["null_stability"] is None is a["stability_excess"]
        else:
            assert (a["null_stability"], a["stability_excess"]) == (b["null_stability"], b["stability_excess"])
        assert {k: v for k, v in a.items() if "seconds" not in k and "null" not in k and "excess" not in k} == {
            k: v for k, v in b.items() if "seconds" not in k and "null" not in k and "excess" not in k}


def test_the_null_keeps_categories_discrete_and_drops_their_association():
    rng = np.random.default_rng(0)
    group = rng.integers(0, 3, 900)
    one_hot = np.eye(3)[group]
    flag = (group == 1).astype(float)[:, None]
    numbers = group[:, None] * 4.0 + rng.normal(0, 1, (900, 2))
    x = np.hstack([one_hot, numbers, flag]).astype(np.float32)
    names = ["plan=a", "plan=b", "plan=c", "spend", "visits", "member"]
    blocks = discrete_blocks(x, names)
    assert sorted(b.tolist() for b in blocks) == [[0, 1, 2], [5]]
    null = null_sample(x, 0, blocks)
    assert set(np.unique(null[:, :3])) == {0.0, 1.0} and (null[:, :3].sum(axis=1) == 1).all()  # still one category per row
    np.testing.assert_allclose(null[:, :3].mean(axis=0), one_hot.mean(axis=0), atol=1e-6)  # the same shares
    null_group = null[:, :3].argmax(axis=1)
    assert abs(np.corrcoef(null_group, null[:, 3])[0, 1]) < 0.1  # no longer tied to the numbers
    assert abs(np.corrcoef(null_group == 1, null[:, 5])[0, 1]) < 0.1  # nor to the other flag
    assert np.unique(null[:, 3]).size > 800  # the numbers are a continuous Gaussian
    assert discrete_blocks(x) and all(len(b) == 1 for b in discrete_blocks(x))  # without names: one group per column


def _scored(model_id, variant, k, stability, silhouette, bic=None, null=0.3):
    return _entry(model_id, variant=variant, requested_clusters=k, n_clusters_found=k, stability=stability,
                  null_stability=null, stability_excess=stability - null, silhouette=silhouette, bic=bic)


def test_each_algorithm_picks_its_k_then_the_most_stable_pick_wins():
    models = [
        # k-means: k = 2 is the most stable model of all, but k = 8 is k-means' own choice (best silhouette)
        _scored("kmeans-k2", "kmeans", 2, 1.0, 0.40),
        _scored("kmeans-k8", "kmeans", 8, 0.95, 0.60),
        _scored("kmeans-k9", "kmeans", 9, 0.60, 0.70),  # not reproducible: never chosen
        # mixtures choose by BIC (lowest), not silhouette
        _scored("gmm-k3", "gmm", 3, 0.90, 0.65, bic=-50.0),
        _scored("gmm-k5", "gmm", 5, 0.97, 0.50, bic=-80.0),
    ]
    chosen, reason = recommend(models)
    assert chosen == "gmm-k5", reason  # gmm's pick (BIC) is more stable than k-means' pick (0.97 > 0.95)
    assert "BIC -80.0" in reason and "2 algorithms' choices" in reason
    models[4]["stability"] = 0.93
    models[4]["stability_excess"] = 0.63
    assert recommend(models)[0] == "kmeans-k8"
    models[1]["stability"] = 0.93  # a tie on stability goes to the finer partition (8 clusters > 5)
    models[1]["stability_excess"] = 0.63
    assert recommend(models)[0] == "kmeans-k8"
    models[4]["stability"] = models[1]["stability"] = 1.0  # saturated: 8 > 5 clusters again, silhouette aside
    models[1]["silhouette"] = 0.45  # still k-means' own pick (k = 2 has 0.40), below gmm-k5's 0.50
    assert recommend(models)[0] == "kmeans-k8"
    models[4]["n_clusters_found"] = 8  # same stability, same clusters found: the higher silhouette
    assert recommend(models)[0] == "gmm-k5"


def test_without_a_reproducible_model_the_silhouette_decides():
    models = [_scored("kmeans-k2", "kmeans", 2, 0.5, 0.4), _scored("kmeans-k3", "kmeans", 3, 0.9, 0.5, null=0.85)]
    chosen, reason = recommend(models)
    assert chosen == "kmeans-k3" and "no model is reproducible" in reason


def test_without_stability_the_reason_says_it_was_not_measured(tmp_path):
    """`clustra train --no-stability`: no refits, the silhouette decides, and the reason does not claim
    that no model was reproducible (nothing was measured)."""
    import json
    import subprocess
    import sys

    frame = blobs_frame()
    frame.to_parquet(tmp_path / "blobs.parquet")
    done = subprocess.run([sys.executable, "-m", "clustra", "train", str(tmp_path / "blobs.parquet"), "--out", str(tmp_path / "run"),
                           "--algorithms", "kmeans", "--k", "2,3,4", "--exclude", "truth", "--no-stability", "--no-insights"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert all(entry.get("stability") is None for entry in board["models"])
    best = max(board["models"], key=lambda e: e["silhouette"])
    assert board["recommended"] == best["model_id"]
    reason = next(line for line in done.stdout.splitlines() if line.startswith("recommended model"))
    assert "stability was not measured" in reason and "no model is reproducible" not in reason
    models = [_scored("kmeans-k2", "kmeans", 2, 0.5, 0.4), _scored("kmeans-k3", "kmeans", 3, 0.9, 0.5, null=0.85)]
    for entry in models:
        entry["stability"] = entry["null_stability"] = entry["stability_excess"] = None
    assert "stability was not measured" in recommend(models)[1]


@pytest.fixture(scope="module")
def blobs_run(tmp_path_factory):
    frame = blobs_frame()
    out = tmp_path_factory.mktemp("sel") / "run"
    config = train_config(algorithms=["kmeans", "gmm", "genie"], genie_gini_thresholds=[0.3], evaluate_against="truth",
                          k=list(range(2, 8)), seed=3)
    return train_run(frame, config, out=out, cluster="inprocess")


def test_recommendation_finds_the_planted_k(blobs_run):
    board = blobs_run.leaderboard()
    chosen = next(e for e in board["models"] if e["model_id"] == board["recommended"])
    assert chosen["n_clusters_found"] == 4, board["recommended_reason"]
    assert chosen["ari"] > 0.95
    assert board["recommended_reason"]


def test_evaluate_against_scores_every_model_and_is_not_a_feature(blobs_run, tmp_path):
    board = blobs_run.leaderboard()
    assert board["evaluated_against"] == "truth"
    assert "truth" not in [c.name for c in blobs_run.result.data.schema.used]
    assert "truth" not in blobs_run.result.data.pipeline.feature_names_
    for entry in board["models"]:
        if entry["status"] == "ok":
            assert {"ari", "nmi", "homogeneity", "completeness"} <= set(entry)
            assert -1.0 <= entry["ari"] <= 1.0 and 0.0 <= entry["nmi"] <= 1.0
    k2 = next(e for e in board["models"] if e["model_id"] == "kmeans-k2")
    assert k2["completeness"] > 0.9 > k2["homogeneity"]  # two clusters merge four groups
    # the answer key never changes the choice: the same run with the column merely excluded
    plain = train_run(blobs_frame(), train_config(algorithms=["kmeans", "gmm", "genie"], genie_gini_thresholds=[0.3],
                                                  k=list(range(2, 8)), exclude=["truth"], seed=3),
                      cluster="inprocess").leaderboard()
    assert plain["recommended"] == board["recommended"] and "ari" not in plain["models"][0]


def test_selection_json_has_a_curve_per_variant(blobs_run):
    import json

    selection = json.loads((blobs_run.run_dir / "selection.json").read_text())
    assert set(selection) == {"kmeans", "gmm", "genie-g0.3"}
    for variant, points in selection.items():
        assert [p["k"] for p in points] == sorted(p["k"] for p in points)
        assert {"k", "silhouette", "davies_bouldin", "calinski_harabasz", "stability", "bic", "model_id"} <= set(points[0])
        assert all((blobs_run.run_dir / "models" / p["model_id"]).is_dir() for p in points)
    assert all(p["bic"] is not None for p in selection["gmm"])
    assert all(p["bic"] is None for p in selection["kmeans"])
    bics = {p["k"]: p["bic"] for p in selection["gmm"]}
    assert min(bics, key=bics.get) == 4  # BIC on the train sample finds the planted mixture


def test_collapsed_components_are_flagged():
    spec = ModelSpec("gmm-k6", "gmm", 6, "gmm")
    metrics = {"silhouette": 0.5, "davies_bouldin": 0.4, "calinski_harabasz": 10.0, "noise_fraction": 0.0,
               "n_clusters_found": 4, "cluster_sizes": {"0": 5, "1": 5, "2": 5, "3": 5}}
    entry = ModelResult(spec, None, metrics).entry()
    assert entry["collapsed"] is True and entry["requested_clusters"] == 6 and entry["n_clusters_found"] == 4
    assert entry["cluster_sizes_basis"] == "validation rows"
    entry.update(rank=1, status="ok", n_clusters=4)
    table = leaderboard_table({"models": [entry], "best": "gmm-k6"})
    assert "4!" in table and "components collapsed" in table
    whole = ModelResult(ModelSpec("gmm-k4", "gmm", 4, "gmm"), None, metrics).entry()
    assert whole["collapsed"] is False


def _entry(model_id, **values):
    base = {"model_id": model_id, "algorithm": "kmeans", "status": "ok", "rank": 0, "requested_clusters": 2,
            "n_clusters_found": 2, "silhouette": None, "davies_bouldin": None, "calinski_harabasz": None,
            "stability": None, "bic": None, "noise_fraction": 0.0, "fit_seconds": 0.1}
    base.update(values)
    return base


@pytest.mark.parametrize(
    "rank_by, expected",
    [
        ("silhouette", ["a", "b", "c", "d"]),
        ("recommended", ["c", "a", "b", "d"]),
        ("stability", ["b", "c", "a", "d"]),
        ("davies_bouldin", ["c", "a", "b", "d"]),
        ("calinski_harabasz", ["b", "a", "c", "d"]),
        ("bic", ["a", "c", "b", "d"]),
    ],
)
def test_rank_by_orders_the_leaderboard(rank_by, expected):
    models = [
        _entry("a", silhouette=0.9, stability=0.5, davies_bouldin=0.5, calinski_harabasz=20, bic=-10.0),
        _entry("b", silhouette=0.8, stability=0.99, davies_bouldin=0.9, calinski_harabasz=30, bic=None),
        _entry("c", silhouette=0.7, stability=0.9, davies_bouldin=0.2, calinski_harabasz=10, bic=5.0),
        _entry("d", status="failed"),
    ]
    board = {"models": models, "best": "a", "recommended": "c"}
    assert [e["model_id"] for e in ordered_entries(board, rank_by)] == expected


def test_rank_by_rejects_an_unknown_key():
    with pytest.raises(ValueError, match="rank_by='size'; expected one of silhouette, recommended"):
        ordered_entries({"models": []}, "size")


def test_selection_curves_group_by_variant():
    board = {"models": [_entry("genie-g0.3-k3", algorithm="genie", variant="genie-g0.3", requested_clusters=3),
                        _entry("genie-g0.3-k2", algorithm="genie", variant="genie-g0.3"),
                        _entry("hdbscan", algorithm="hdbscan", variant="hdbscan", requested_clusters=None),
                        _entry("kmeans-k2", status="failed")]}
    curves = selection_curves(board)
    assert list(curves) == ["genie-g0.3", "hdbscan"]
    assert [p["model_id"] for p in curves["genie-g0.3"]] == ["genie-g0.3-k2", "genie-g0.3-k3"]
    assert curves["hdbscan"][0]["k"] is None


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from test_cli import clustra

    out = tmp_path_factory.mktemp("demo")
    result = clustra("demo", "--out", out, timeout=900)
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.mark.slow
def test_demo_applies_the_recommended_model_and_says_how_it_chose(demo):
    import json

    out, result = demo
    board = json.loads((out / "run" / "leaderboard.json").read_text())
    assert f"recommended model: {board['recommended']}" in result.stdout
    assert f"how it chose: {selection_rule()}" in result.stdout
    assert f"the recommended model {board['recommended']} is applied to every row" in result.stdout
    scored = pd.read_parquet(out / "scored")
    chosen = next(e for e in board["models"] if e["model_id"] == board["recommended"])
    assert scored["cluster_id"].nunique() == chosen["n_clusters_found"] and len(scored) == 344
    assert (out / "run" / "selection.json").is_file()


@pytest.mark.slow
def test_demo_recommends_three_penguin_groups(demo):
    import json
    import re

    out, result = demo
    board = json.loads((out / "run" / "leaderboard.json").read_text())
    chosen = next(e for e in board["models"] if e["model_id"] == board["recommended"])
    assert chosen["n_clusters_found"] == 3
    agreement = float(re.search(r"agreement with the true species \(ARI[^)]*\): ([0-9.]+)", result.stdout).group(1))
    assert agreement >= 0.8, result.stdout
    assert "leaves out species" in result.stdout and "sex" in result.stdout


def test_validity_indices_are_genieclusts_without_importing_it():
    """The indices equal genieclust's own (tests/test_validity.py compares them in depth) and need
    neither genieclust nor its plots (matplotlib, ~0.7 s of a process)."""
    import subprocess
    import sys

    script = """
import sys, numpy as np
from sklearn.datasets import make_blobs
from cluster_core.selection import validity_indices
x, y = make_blobs(600, n_features=3, centers=3, random_state=2)
ours = validity_indices(x, y)
assert "matplotlib" not in sys.modules and "genieclust" not in sys.modules, sorted(m for m in sys.modules if "genie" in m or "matplotlib" in m)
from genieclust import cluster_validity
expected = {"wcnn": round(float(cluster_validity.wcnn_index(x, y, M=25)), 4),
            "dunn_owa": round(float(cluster_validity.dunnowa_index(x, y, M=25, owa_numerator="SMin:5", owa_denominator="Max")), 4)}
assert ours == expected and ours["wcnn"] is not None, (ours, expected)
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
