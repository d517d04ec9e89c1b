import json
import subprocess
import sys

import numpy as np
import pytest

from cluster_core.algorithms import HDBSCAN, GaussianMixture, KMeans
from cluster_core.errors import ArtifactError, InvalidInputError
from cluster_core.features import FeaturePipeline
from cluster_core.model import ClusteringModel
from cluster_core.schema import infer_schema

ESTIMATORS = {
    "kmeans": lambda: KMeans(3, random_state=0),
    "gmm": lambda: GaussianMixture(3, random_state=0),
    "gmm-diag": lambda: GaussianMixture(3, covariance_type="diag", random_state=0),
    "hdbscan": lambda: HDBSCAN(20),
}


def _model(frame, algorithm):
    pipeline = FeaturePipeline(infer_schema(frame)).fit(frame)
    estimator = ESTIMATORS[algorithm]().fit(pipeline.transform(frame))
    return ClusteringModel(pipeline, estimator, f"{algorithm}-test", metadata={"algorithm": algorithm})


@pytest.mark.parametrize("algorithm", sorted(ESTIMATORS))
def test_another_process_gives_identical_assignments(tmp_path, mixed_frame, algorithm):
    model = _model(mixed_frame, algorithm)
    path = model.save(tmp_path / "model")
    data = tmp_path / "rows.parquet"
    mixed_frame.to_parquet(data)
    script = (
        "import sys, numpy as np, pandas as pd\n"
        "from cluster_core.model import ClusteringModel\n"
        f"m = ClusteringModel.load({str(path)!r})\n"
        f"np.save({str(tmp_path / 'labels.npy')!r}, m.assign(pd.read_parquet({str(data)!r})).labels)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert np.array_equal(np.load(tmp_path / "labels.npy"), model.assign(mixed_frame).labels)
    names = {p.name for p in path.iterdir()}
    assert names <= {"model.json", "pipeline.json", "pipeline.npz", "estimator.json", "estimator.npz", "drift.json", "drift.npz"}
    assert not any(p.suffix in (".pkl", ".pickle", ".joblib") for p in path.iterdir())


def test_score_frame_columns(mixed_frame):
    kmeans = _model(mixed_frame, "kmeans").score_frame(mixed_frame)
    assert list(kmeans.columns[-3:]) == ["cluster_id", "distance", "cluster_name"]
    assert (kmeans["distance"] >= 0).all()
    gmm = _model(mixed_frame, "gmm").score_frame(mixed_frame)
    assert list(gmm.columns[-3:]) == ["cluster_id", "cluster_probability", "cluster_name"]
    assert list(gmm.columns[: mixed_frame.shape[1]]) == list(mixed_frame.columns)


def test_describe_and_refusals(tmp_path, mixed_frame):
    model = _model(mixed_frame, "kmeans")
    path = model.save(tmp_path / "m")
    info = json.loads((path / "model.json").read_text())
    assert info["format"] == "clustra-model" and info["n_clusters"] == 3
    assert {c["name"] for c in info["input_schema"]} >= {"spend", "plan"}
    with pytest.raises(InvalidInputError, match="already exists"):
        model.save(path)
    info["format_version"] = 99
    (path / "model.json").write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match="format_version=99"):
        ClusteringModel.load(path)
    with pytest.raises(ArtifactError, match="not a Clustra model directory"):
        ClusteringModel.load(tmp_path)
