"""Image columns: scikit-learn's digits as PNG files through the image path, and the failure modes."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from _real_data import write_digits
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from cluster_core._state import read_state, write_state
from cluster_core.algorithms import KMeans
from cluster_core.errors import ArtifactError, InvalidInputError
from cluster_core.features import FeaturePipeline
from cluster_core.features.image import ImageFeaturizer, low_level_features
from cluster_core.schema import infer_schema


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> pd.DataFrame:
    return write_digits(tmp_path_factory.mktemp("digits"), 300, seed=0)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_digits_png_cluster_by_digit(digits, seed):
    schema = infer_schema(digits[["image"]])
    assert schema.column("image").kind == "image"
    pipeline = FeaturePipeline(schema).fit(digits)
    features = pipeline.transform(digits)
    assert features.shape == (300, 123) and pipeline.feature_names_[-1] == "image__unreadable"
    labels = KMeans(10, n_init=5, random_state=seed).fit(features).predict(features)
    assert adjusted_rand_score(digits["label"], labels) >= 0.4


def test_low_level_features_measure_colour_and_orientation():
    red = np.zeros((1, 3, 32, 32), np.float32)
    red[:, 0] = 1.0
    stripes = np.zeros((1, 3, 32, 32), np.float32)
    stripes[:, :, :, ::4] = 1.0  # vertical lines: horizontal gradients
    out = low_level_features(torch.from_numpy(np.concatenate([red, stripes])), bins=4, orientations=4, grid=1, thumbnail=2)
    assert out.shape == (2, 3 * 4 + 4 + 2 + 4)
    assert out[0, 3] == 1.0 and out[0, 4] == 1.0  # all red in the top red bin, all green in the lowest
    orientation = out[1, 12:16]
    assert orientation.argmax() == 0 and orientation[0] > 0.9  # gradient along x: orientation 0
    assert out[0, 16] < 1e-6 and out[1, 16] > 0.1  # no edges in a flat image


def test_paths_bytes_data_uris_and_structs_agree(digits):
    frame = digits.head(5)
    raw = [open(p, "rb").read() for p in frame["image"]]
    import base64

    featurizer = ImageFeaturizer("image").fit(digits)
    from_paths = featurizer.transform(frame)
    variants = {
        "bytes": raw,
        "uri": [f"file://{p}" for p in frame["image"]],
        "data": ["data:image/png;base64," + base64.b64encode(b).decode() for b in raw],
        "struct": [{"bytes": b, "path": None} for b in raw],
    }
    for name, values in variants.items():
        np.testing.assert_allclose(featurizer.transform(pd.DataFrame({"image": values})), from_paths, atol=1e-5, err_msg=name)
    assert infer_schema(pd.DataFrame({"image": raw * 2})).column("image").kind == "image"


def test_unreadable_images_are_reported_per_row_not_fatal(digits, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    frame = pd.DataFrame({"image": [digits["image"][0], str(tmp_path / "missing.png"), str(broken), None]})
    pipeline = FeaturePipeline(infer_schema(digits[["image"]])).fit(digits)
    issues: list = []
    features = pipeline.transform(frame, issues=issues)
    assert features.shape[0] == 4 and np.isfinite(features).all()
    assert [i["row"] for i in issues] == [1, 2]  # a missing value is not an error
    assert "missing.png" in issues[0]["value"] and "No such file" in issues[0]["error"]
    assert "broken.png" in issues[1]["value"] and issues[1]["error"]
    flag = pipeline.feature_names_.index("image__unreadable")
    assert features[:, flag].tolist() == [0.0, 1.0, 1.0, 1.0] or features[0, flag] < features[1, flag]


def test_no_readable_image_in_the_sample_is_an_error(tmp_path):
    with pytest.raises(InvalidInputError, match="no readable image"):
        ImageFeaturizer("image").fit(pd.DataFrame({"image": [str(tmp_path / "a.png"), str(tmp_path / "b.png")]}))


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 5, stride=4)

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 1).flatten(1)


def test_torchscript_model_embeddings_referenced_by_checksum(digits, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.script(TinyNet()).save(str(path))
    featurizer = ImageFeaturizer("image", model=str(path), model_input_size=32).fit(digits)
    assert featurizer.feature_names_ == [f"image__model{i}" for i in range(6)] + ["image__unreadable"]
    block = featurizer.transform(digits.head(10))
    assert block.shape == (10, 7) and np.abs(block[:, :6]).sum() > 0
    write_state(tmp_path, "image", featurizer.get_state())
    state = read_state(tmp_path, "image")
    assert state["fitted"]["model"]["path"] == str(path.resolve()) and len(state["fitted"]["model"]["sha256"]) == 64
    assert (tmp_path / "image.npz").stat().st_size < 10_000  # the weights are referenced, not copied
    restored = ImageFeaturizer.from_state(state)
    np.testing.assert_allclose(restored.transform(digits.head(10)), block, atol=1e-5)
    torch.jit.script(torch.nn.Sequential(torch.nn.Flatten())).save(str(path))  # weights replaced after training
    with pytest.raises(ArtifactError, match="sha256"):
        ImageFeaturizer.from_state(state).transform(digits.head(2))


def test_onnx_model_matches_torchscript(digits, tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX models need onnxruntime (dev extra)")
    onnx_path, script_path = tmp_path / "tiny.onnx", tmp_path / "tiny.pt"
    net = TinyNet().eval()
    torch.jit.script(net).save(str(script_path))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 32, 32), str(onnx_path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    from_onnx = ImageFeaturizer("image", model=str(onnx_path), model_input_size=32).fit(digits).transform(digits.head(8))
    from_script = ImageFeaturizer("image", model=str(script_path), model_input_size=32).fit(digits).transform(digits.head(8))
    np.testing.assert_allclose(from_onnx, from_script, atol=1e-4)
