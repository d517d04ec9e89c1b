import numpy as np

from cluster_core.insights import profile_clusters


def test_profiles_name_what_sets_clusters_apart():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (300, 3))
    x[:100, 0] += 3  # cluster 0: high spend
    x[100:200, 1] -= 3  # cluster 1: low visits
    labels = np.repeat([0, 1, 2], 100)
    profiles = profile_clusters(x, labels, ["spend", "visits", "plan=pro"], 3)
    assert profiles[0]["name"].startswith("high spend")
    assert profiles[1]["name"].startswith("low visits")
    assert [p["size"] for p in profiles] == [100, 100, 100]
    assert profiles[0]["top_features"][0]["feature"] == "spend"


def test_names_are_unique():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.1, (400, 3))
    x[:200, 0] += 3
    x[:100, 2] += 1  # clusters 0 and 1 share "high a" first; the third feature tells them apart
    x[100:200, 2] -= 1
    labels = np.repeat([0, 1, 2, 3], 100)
    names = [p["name"] for p in profile_clusters(x, labels, ["a", "b", "c"], 4)]
    assert len(set(names)) == 4
