"""Image columns: low-level features computed in torch, or embeddings from a user's model.

Values may be file paths (relative to the ``root`` option or the working directory),
``file://`` / fsspec URLs (``s3://...``), ``data:image/...;base64,`` URIs, raw bytes, or
``{"bytes": ..., "path": ...}`` records (Parquet image structs). With ``CLUSTRA_IMAGE_ROOTS``
set (directories or URL prefixes, separated by ``os.pathsep``; the jobs service sets it), a
path or URL is read only when it resolves under one of them (symlinks followed); any other
is an unreadable value of its row. Images are decoded with
Pillow (in threads), resized to ``size`` x ``size`` RGB and processed as one batch tensor
on the resolved device:

* colour histograms: ``bins`` bins per RGB channel (fractions of pixels);
* edge/gradient orientation statistics: Sobel gradients of the grey image, a
  magnitude-weighted histogram of unsigned orientations (``orientations`` bins) in each
  cell of a ``grid`` x ``grid`` layout, the mean gradient magnitude and the edge density;
* a ``thumbnail`` x ``thumbnail`` grey thumbnail (area averages).

With ``model`` (a TorchScript ``.pt``/``.ts`` file or an ``.onnx`` file) the model's
output on ImageNet-normalized ``model_input_size`` images is used instead (or as well,
with ``low_level=True``). Every feature is standardized on the fit sample. A value that
cannot be read is not fatal: the row gets the sample mean and ``<name>__unreadable`` = 1,
and the problem is reported per row (``issues``).
"""

from __future__ import annotations

import base64
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .._compat import require
from ..device import resolve_device
from ..errors import InvalidInputError
from ._base import Featurizer, register
from ._models import ModelRef, load_once

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_DECODE_THREADS = min(8, os.cpu_count() or 1)


def is_missing(value) -> bool:
    """True for None / NaN."""
    return value is None or (isinstance(value, float) and np.isnan(value))


IMAGE_ROOTS_ENV = "CLUSTRA_IMAGE_ROOTS"


def allowed_image_roots() -> list[str] | None:
    """The roots image files may be read from (``CLUSTRA_IMAGE_ROOTS``), None when unrestricted."""
    value = os.environ.get(IMAGE_ROOTS_ENV)
    if not value:
        return None
    return [r if "://" in r else os.path.realpath(r) for r in value.split(os.pathsep) if r]


def _check_allowed(location: str, roots: list[str]) -> None:
    """PermissionError unless ``location`` (a real path or a URL) lies under one of ``roots``."""
    for root in roots:
        base = root.rstrip("/")
        if location == base or location.startswith(base + ("/" if "://" in root else os.sep)):
            return
    raise PermissionError(f"image {location!r} is outside the allowed image roots ({IMAGE_ROOTS_ENV})")


def read_image_bytes(value, root: str | None = None) -> bytes:
    """The encoded bytes of one image value (path, URL, data URI, bytes or struct).

    Raises
    ------
    PermissionError
        ``CLUSTRA_IMAGE_ROOTS`` is set and the path or URL lies outside its roots.
    """
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return bytes(value["bytes"])
        value = value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, str):
        raise TypeError(f"expected a path, URL or bytes, got {type(value).__name__}")
    text = value.strip()
    if text.lower().startswith("data:image/"):
        return base64.b64decode(text.split(",", 1)[1])
    allowed = allowed_image_roots()
    if "://" in text:
        if allowed is not None:
            if text.lower().startswith("file://"):
                _check_allowed(os.path.realpath(text[len("file://"):]), allowed)
            else:
                _check_allowed(text, allowed)
        import fsspec

        with fsspec.open(text, "rb") as handle:
            return handle.read()
    path = Path(text).expanduser()
    if root and not path.is_absolute():
        path = Path(root) / path
    if allowed is not None:
        _check_allowed(os.path.realpath(path), allowed)
    return path.read_bytes()


def load_image(value, size: int, root: str | None = None) -> np.ndarray:
    """One image as uint8 RGB of shape (size, size, 3); raises on anything unreadable."""
    pil = require("PIL.Image", "image columns")
    with pil.open(io.BytesIO(read_image_bytes(value, root))) as image:
        image.draft("RGB", (size, size))  # JPEG: decode at reduced scale
        rgb = image.convert("RGB").resize((size, size), pil.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def _describe(value) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return str(value.get("path") or f"<{len(value.get('bytes') or b'')} bytes>")
    return str(value)[:120]


def decode_batch(values: list, size: int, root: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(uint8 images (n, size, size, 3), missing mask, unreadable mask, error per row ("" if none))."""
    images = np.zeros((len(values), size, size, 3), np.uint8)
    missing = np.array([is_missing(v) for v in values], bool)
    errors = [""] * len(values)

    def one(row: int) -> None:
        try:
            images[row] = load_image(values[row], size, root)
        except Exception as exc:  # every failure of one image is reported for its row, not raised
            errors[row] = f"{type(exc).__name__}: {exc}"

    rows = [i for i in range(len(values)) if not missing[i]]
    if len(rows) > 16 and _DECODE_THREADS > 1:
        with ThreadPoolExecutor(_DECODE_THREADS) as pool:
            list(pool.map(one, rows))
    else:
        for row in rows:
            one(row)
    return images, missing, np.array([bool(e) for e in errors], bool), errors


def low_level_features(images, *, bins: int = 8, orientations: int = 8, grid: int = 2, thumbnail: int = 8):
    """Colour histograms, gradient-orientation statistics and a grey thumbnail of a batch.

    Parameters
    ----------
    images : torch.Tensor of shape (n, 3, H, W), float in [0, 1], on any device.

    Returns
    -------
    torch.Tensor of shape (n, 3 * bins + grid**2 * orientations + 2 + thumbnail**2)
    """
    import torch
    import torch.nn.functional as F

    n, _, height, width = images.shape
    pixels = height * width
    levels = (images * bins).long().clamp_(0, bins - 1).reshape(n, 3, pixels)
    colour = torch.zeros(n, 3, bins, device=images.device, dtype=images.dtype)
    colour.scatter_add_(2, levels, torch.ones_like(levels, dtype=images.dtype))
    colour = (colour / pixels).reshape(n, -1)

    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    grey = (images * weights).sum(dim=1, keepdim=True)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=images.device, dtype=images.dtype)
    kernels = torch.stack([sobel, sobel.T]).unsqueeze(1) / 4.0
    gradients = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    gx, gy = gradients[:, 0], gradients[:, 1]
    magnitude = torch.sqrt(gx * gx + gy * gy)
    angle = torch.remainder(torch.atan2(gy, gx), torch.pi)  # unsigned orientation in [0, pi)
    slot = (angle / torch.pi * orientations).long().clamp_(0, orientations - 1)
    cell_y = (torch.arange(height, device=images.device) * grid // height).view(1, height, 1)
    cell_x = (torch.arange(width, device=images.device) * grid // width).view(1, 1, width)
    index = ((cell_y * grid + cell_x) * orientations + slot).reshape(n, pixels)
    histogram = torch.zeros(n, grid * grid * orientations, device=images.device, dtype=images.dtype)
    histogram.scatter_add_(1, index, magnitude.reshape(n, pixels))
    histogram = histogram.view(n, grid * grid, orientations)
    histogram = (histogram / histogram.sum(dim=2, keepdim=True).clamp_min(1e-8)).reshape(n, -1)
    edges = torch.stack([magnitude.mean(dim=(1, 2)), (magnitude > 0.1).to(images.dtype).mean(dim=(1, 2))], dim=1)

    thumb = F.adaptive_avg_pool2d(grey, thumbnail).reshape(n, -1)
    return torch.cat([colour, histogram, edges, thumb], dim=1)


def low_level_names(column: str, bins: int, orientations: int, grid: int, thumbnail: int) -> list[str]:
    """Feature names matching :func:`low_level_features`."""
    names = [f"{column}__{c}{i}" for c in "rgb" for i in range(bins)]
    names += [f"{column}__orient_c{cell}_{i}" for cell in range(grid * grid) for i in range(orientations)]
    names += [f"{column}__edge_magnitude", f"{column}__edge_density"]
    return names + [f"{column}__thumb{i}" for i in range(thumbnail * thumbnail)]


def load_image_model(ref: ModelRef, device: str):
    """A callable (float32 (n, 3, S, S) numpy -> (n, d) numpy) for a TorchScript or ONNX model, loaded once."""

    path = ref.local_path()  # checked on every call (cached by file size and time): replaced weights are refused

    def load():
        if path.suffix.lower() == ".onnx":
            ort = require("onnxruntime", "ONNX image models")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
            session = ort.InferenceSession(str(path), providers=providers)
            name = session.get_inputs()[0].name
            return lambda batch: np.asarray(session.run(None, {name: batch})[0])
        import warnings

        import torch

        with warnings.catch_warnings():  # TorchScript is deprecated upstream, but it is what users export
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device).eval()

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(batch).to(device)).float().cpu().numpy()

        return run

    return load_once(("image-model", ref.sha256, device), load)


@register
class ImageFeaturizer(Featurizer):
    """Low-level image features (see the module docstring) or a model's embeddings.

    Options: ``size`` (64, decode size), ``bins`` (8), ``orientations`` (8), ``grid`` (2),
    ``thumbnail`` (8), ``batch_size`` (256), ``root`` (base directory of relative paths),
    ``model`` (path of a TorchScript/ONNX model), ``model_input_size`` (224),
    ``low_level`` (default: true without a model), ``device``.
    """

    kind = "image"
    balance = True
    reports_issues = True

    def _opt(self, name: str, default):
        value = self.options.get(name)
        return default if value is None else value

    def fit(self, frame: pd.DataFrame) -> ImageFeaturizer:
        model = self.options.get("model")
        self.model_ref_ = ModelRef.resolve(model, "image model") if model else None
        self.low_level_ = bool(self._opt("low_level", self.model_ref_ is None))
        if not self.low_level_ and self.model_ref_ is None:
            raise InvalidInputError(f"image column {self.column!r}: low_level=false needs a model")
        raw, unreadable = self._raw(frame, None)
        readable = raw[~unreadable]
        if readable.shape[0] == 0:
            raise InvalidInputError(f"image column {self.column!r}: no readable image in the sample of {len(frame)} rows")
        self.mean_ = readable.mean(axis=0)
        std = readable.std(axis=0)
        self.scale_ = np.where(std > 1e-6, std, 1.0)
        names = []
        if self.low_level_:
            names += low_level_names(self.column, *self._shape())
        if self.model_ref_ is not None:
            names += [f"{self.column}__model{i}" for i in range(raw.shape[1] - len(names))]
        self.feature_names_ = names + [f"{self.column}__unreadable"]
        self.fit_unreadable_ = int(unreadable.sum())
        return self

    def _shape(self) -> tuple[int, int, int, int]:
        return (int(self._opt("bins", 8)), int(self._opt("orientations", 8)), int(self._opt("grid", 2)), int(self._opt("thumbnail", 8)))

    def _raw(self, frame: pd.DataFrame, issues: list | None) -> tuple[np.ndarray, np.ndarray]:
        """Unscaled features (n, d) and the unreadable-or-missing mask."""
        import torch

        values = frame[self.column].tolist()
        device = resolve_device(self.options.get("device")).torch
        size, batch_size = int(self._opt("size", 64)), int(self._opt("batch_size", 256))
        blocks, bad = [], []
        for start in range(0, max(len(values), 1), batch_size):
            chunk = values[start : start + batch_size]
            images, missing, unreadable, errors = decode_batch(chunk, size, self.options.get("root"))
            if issues is not None:
                issues.extend(
                    {"row": start + i, "column": self.column, "value": _describe(chunk[i]), "error": errors[i]}
                    for i in np.flatnonzero(unreadable)
                )
            tensor = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            parts = []
            if self.low_level_:
                parts.append(low_level_features(tensor, **dict(zip(("bins", "orientations", "grid", "thumbnail"), self._shape()))).cpu().numpy())
            if self.model_ref_ is not None:
                parts.append(self._embed(tensor, device))
            blocks.append(np.hstack(parts).astype(np.float64) if parts else np.zeros((len(chunk), 0)))
            bad.append(missing | unreadable)
        return np.vstack(blocks)[: len(values)], np.concatenate(bad)[: len(values)]

    def _embed(self, tensor, device: str) -> np.ndarray:
        import torch.nn.functional as F

        side = int(self._opt("model_input_size", 224))
        resized = F.interpolate(tensor, size=(side, side), mode="bilinear", align_corners=False)
        mean = resized.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = resized.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        batch = ((resized - mean) / std).float().cpu().numpy()
        out = load_image_model(self.model_ref_, device)(batch)
        return np.asarray(out, np.float64).reshape(len(batch), -1)

    def transform(self, frame: pd.DataFrame, issues: list | None = None) -> np.ndarray:
        """Standardized features; unreadable/missing rows get the sample mean (0) and the flag 1.

        Parameters
        ----------
        issues : list, optional
            Receives ``{"row", "column", "value", "error"}`` for every unreadable image.
        """
        raw, bad = self._raw(frame, issues)
        scaled = (raw - self.mean_) / self.scale_
        scaled[bad] = 0.0
        return np.hstack([scaled, bad[:, None].astype(np.float64)]).astype(np.float32)

    def fitted_state(self) -> dict:
        return {
            "low_level": self.low_level_,
            "model": self.model_ref_.to_dict() if self.model_ref_ is not None else None,
            "mean": self.mean_,
            "scale": self.scale_,
            "fit_unreadable": self.fit_unreadable_,
        }

    def load_fitted_state(self, state: dict) -> None:
        self.low_level_ = bool(state["low_level"])
        self.model_ref_ = ModelRef.from_dict(state["model"]) if state.get("model") else None
        self.mean_ = np.asarray(state["mean"], np.float64)
        self.scale_ = np.asarray(state["scale"], np.float64)
        self.fit_unreadable_ = int(state.get("fit_unreadable", 0))
