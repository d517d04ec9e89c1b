"""Typed training settings (defaults documented once, here).

Every field has a type, a range and a meaning checked here, and only here: the CLI flags,
the Python API and the jobs service's specs all validate through :class:`TrainConfig`, so
a value refused by one is refused by all (``kmeans_n_init=1e20``, ``seed=-1``,
``weights={"spend": -1}``, ``device="x"``, a path with a NUL byte).

A field that names a file or directory carries a :class:`PathRole` in its metadata
(``data``: read under the data roots; ``model``: weights read under the model roots;
``output``: written under the output roots). A service that confines paths finds every
such field with :func:`path_fields`, so a new path field is confined as soon as it is
declared with a role.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .algorithms import algorithms_with_metric, check_algorithms, check_metric_support
from .errors import InvalidInputError

DEFAULT_ALGORITHMS = ["kmeans", "gmm", "hdbscan", "genie"]

MAX_SEED = 2**32 - 1
MAX_N_INIT = 1000
MAX_ITER = 100_000
MAX_CLUSTERS = 10_000
MAX_ROWS = 10**9
MAX_WEIGHT = 1e6
MAX_PATH_CHARS = 4096
MAX_NAME_CHARS = 1024
MAX_NAMES = 10_000
PATH_ROLES = ("data", "model", "output")


@dataclass(frozen=True)
class PathRole:
    """Metadata of a path-valued field: ``data`` (read under a data root), ``model`` (weights
    read under a model root) or ``output`` (written under an output root)."""

    role: str

    def __post_init__(self) -> None:
        if self.role not in PATH_ROLES:
            raise ValueError(f"role={self.role!r} is not one of {PATH_ROLES}")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    return value


PathText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_CHARS), AfterValidator(_no_nul)]
"""A path as text: 1 to 4096 characters, no NUL."""
ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS), AfterValidator(_no_nul)]
"""A column (or kind) name: 1 to 1024 characters, no NUL."""
Weight = Annotated[float, Field(gt=0.0, le=MAX_WEIGHT), AfterValidator(_finite)]
"""A block weight: a finite number in (0, 1e6]."""


def path_fields(model: type[BaseModel]) -> dict[str, str]:
    """The path-valued fields of a settings model and their roles (``{"text_model": "model", ...}``)."""
    roles: dict[str, str] = {}
    for name, info in model.model_fields.items():
        role = next((m.role for m in info.metadata if isinstance(m, PathRole)), None)
        if role is not None:
            roles[name] = role
    return roles


class TrainConfig(BaseModel):
    """What to train and how; every field has a default.

    ``algorithms``: registered algorithms (:func:`cluster_core.algorithms.algorithm_names`):
    the built-in kmeans, gmm (full covariance), gmm-diag, hdbscan, and those of plugins.
    ``k``: cluster counts to sweep (None: chosen from the data size, see
    :func:`cluster_core.training.default_cluster_counts`); each must be <= ``max_k``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    algorithms: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=lambda: list(DEFAULT_ALGORITHMS), max_length=100)
    k: list[Annotated[int, Field(le=MAX_CLUSTERS)]] | None = Field(None, max_length=1000)
    max_k: int = Field(100, ge=2, le=MAX_CLUSTERS, description="largest cluster count allowed (raise it for more)")
    include: list[ColumnName] | None = Field(None, max_length=MAX_NAMES)
    exclude: list[ColumnName] = Field(default_factory=list, max_length=MAX_NAMES)
    kinds: dict[ColumnName, ColumnName] = Field(default_factory=dict, max_length=MAX_NAMES,
                                                description="forced column kinds")
    weights: dict[ColumnName, Weight] = Field(default_factory=dict, max_length=MAX_NAMES,
                                              description="per-column block weights, each in (0, 1e6]")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="random seed, 0 to 2**32-1")
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    feature_sample_rows: int = Field(100_000, ge=10, le=MAX_ROWS, description="rows the featurizers are fitted on")
    silhouette_sample: int = Field(10_000, ge=100, le=MAX_ROWS, description="rows scored for the silhouette estimate")
    silhouette_reference: int = Field(
        20_000, ge=0, le=MAX_ROWS,
        description="above this many validation rows, the scored rows are measured against a stratified sample "
        "of about this many rows instead of all of them (0: always all rows)",
    )
    kmeans_n_init: int = Field(3, ge=1, le=MAX_N_INIT, description="KMeans restarts per model (1 to 1000)")
    gmm_n_init: int = Field(3, ge=1, le=MAX_N_INIT, description="GaussianMixture restarts per model (1 to 1000; 3 as KMeans: a single EM run makes a mixture's stability measure its initialisation)")
    gmm_reg_covar: float = Field(1e-4, ge=0.0, le=1e3,
                                 description="added to covariance diagonals (features are ~unit scale)")
    max_iter: int = Field(300, ge=1, le=MAX_ITER)
    hdbscan_min_cluster_size: int | None = Field(None, ge=2, le=MAX_ROWS)
    hdbscan_min_samples: int | None = Field(None, ge=1, le=MAX_ROWS)
    hdbscan_max_fit_samples: int = Field(50_000, ge=100, le=MAX_ROWS)
    genie_gini_thresholds: list[Annotated[float, AfterValidator(_finite)]] = Field(
        default_factory=lambda: [0.1, 0.3, 0.5], min_length=1, max_length=20,
        description="Gini thresholds swept by genie (one variant each, each in [0, 1])",
    )
    genie_gini_threshold: float = Field(0.3, ge=0.0, le=1.0, description="Gini threshold of one genie model")
    genie_max_fit_samples: int = Field(20_000, ge=100, le=MAX_ROWS, description="genie builds its tree on at most this many rows")
    stability: bool = Field(True, description="measure each model's stability under resampling (for the recommendation)")
    stability_sample: int = Field(2_000, ge=50, le=1_000_000, description="train rows the stability refits are drawn from")
    stability_pairs: int = Field(2, ge=1, le=100, description="pairs of refits per model (and per null model)")
    evaluate_against: ColumnName | None = Field(
        None, description="column scored against every model (ARI, NMI, ...), excluded from the features, "
        "never used for the recommendation",
    )
    local_fit_max_bytes: int = Field(512 << 20, ge=0, le=1 << 50,
                                     description="train matrices up to this size fit in one task per model")
    persist: str = Field(
        "auto",
        pattern="^(auto|always|never)$",
        description="keep featurized partitions in worker memory: auto = when they fit in half of it; "
        "never = recompute (stream from Parquet) on every pass",
    )
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$", description="auto, cpu or cuda")
    metric: str = Field(
        "euclidean", pattern="^(euclidean|cosine)$",
        description="distance: euclidean, or cosine (spherical k-means; hdbscan and genie on unit-normalized rows; "
        "the silhouette with cosine distances). With cosine and no algorithms given, the defaults that support it run",
    )
    # -- multimodal features (text, image, geo), balance, reduction, the embedding view --
    geo_pairs: list[Annotated[str, StringConstraints(max_length=2 * MAX_NAME_CHARS + 1)]] = Field(
        default_factory=list, max_length=MAX_NAMES, description="declared LAT:LON column pairs")
    text_method: str = Field("auto", pattern="^(auto|embedding|tfidf)$", description="auto = embeddings when installed, else TF-IDF")
    text_model: Annotated[PathText | None, PathRole("model")] = Field(
        None, description="sentence-transformers directory (default: packaged all-MiniLM-L6-v2)")
    text_batch_size: int = Field(64, ge=1, le=100_000)
    text_threads: int | None = Field(None, ge=1, le=1024, description="torch threads while embedding (default: the process setting)")
    image_model: Annotated[PathText | None, PathRole("model")] = Field(
        None, description="TorchScript (.pt/.ts) or ONNX (.onnx) image model")
    image_root: Annotated[PathText | None, PathRole("data")] = Field(
        None, description="base directory of relative image paths")
    balance: str = Field("column", pattern="^(column|none)$", description="column = text/image/geo blocks count as one column")
    kind_weights: dict[ColumnName, Weight] = Field(default_factory=dict, max_length=100,
                                                   description="per-kind block weights, e.g. {'text': 2}, each in (0, 1e6]")
    reduce: str = Field("none", pattern="^(none|pca|svd)$", description="reduce the combined matrix")
    reduce_components: int = Field(32, ge=1, le=MAX_CLUSTERS)
    stats_sample_rows: int = Field(2000, ge=10, le=MAX_ROWS, description="rows the balance and the reduction are fitted on")
    view_method: str = Field("pca", pattern="^(pca|tsne)$", description="2-D projection of the embedding view")
    view_sample_rows: int = Field(2000, ge=0, le=10**6, description="rows shown in each model's embedding view (0 = no view)")
    gallery_size: int = Field(8, ge=0, le=1000, description="representative images per cluster and image column")
    # -- insights (docs/insights.md) --
    insights: bool = Field(True, description="write insights.json (profiles, observations, heatmap, impact, associations) per model")
    insights_sample_rows: int = Field(5000, ge=10, le=MAX_ROWS, description="rows of the feature sample the insights are computed on")
    impact_sample_rows: int = Field(2000, ge=10, le=MAX_ROWS, description="rows permuted for the feature impact")
    association_sample_rows: int = Field(2000, ge=10, le=MAX_ROWS, description="rows the feature associations are computed on")

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one algorithm is required")
        try:
            check_algorithms(value)
        except InvalidInputError as exc:  # pydantic names the field
            raise ValueError(exc.message) from None
        return list(dict.fromkeys(value))

    @field_validator("k")
    @classmethod
    def _positive_counts(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("k must list at least one cluster count")
        bad = [k for k in value if k < 2][:10]
        if bad:
            raise ValueError(f"cluster counts must be >= 2, got {bad}")
        return sorted(set(value))

    @field_validator("genie_gini_thresholds")
    @classmethod
    def _gini_in_unit_interval(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("genie_gini_thresholds must list at least one threshold")
        bad = [g for g in value if not 0.0 <= g <= 1.0]
        if bad:
            raise ValueError(f"Gini thresholds must be in [0, 1], got {bad}")
        return sorted(set(value))

    @field_validator("geo_pairs")
    @classmethod
    def _lat_lon_pairs(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if len([c for c in p.split(":") if c.strip()]) != 2]
        if bad:
            raise ValueError(f"geo pairs must look like LAT_COLUMN:LON_COLUMN, got {bad}")
        return value

    def geo_pair_tuples(self) -> list[tuple[str, str]]:
        """``geo_pairs`` as (latitude column, longitude column) tuples."""
        return [tuple(c.strip() for c in p.split(":")) for p in self.geo_pairs]

    def kind_options(self) -> dict[str, dict]:
        """Per-kind featurizer options from the settings above."""
        text = {"method": self.text_method, "model": self.text_model, "batch_size": self.text_batch_size,
                "threads": self.text_threads, "device": None if self.device == "auto" else self.device}
        image = {"model": self.image_model, "root": self.image_root, "device": None if self.device == "auto" else self.device}
        return {"text": {k: v for k, v in text.items() if v is not None},
                "image": {k: v for k, v in image.items() if v is not None}}

    @model_validator(mode="after")
    def _algorithms_support_metric(self) -> TrainConfig:
        if self.metric == "euclidean":
            return self
        if "algorithms" not in self.model_fields_set:  # the defaults: those that can use the metric
            self.__dict__["algorithms"] = algorithms_with_metric(self.algorithms, self.metric)
            return self
        try:
            check_metric_support(self.algorithms, self.metric)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None
        return self

    @model_validator(mode="after")
    def _counts_within_max_k(self) -> TrainConfig:
        if self.k and max(self.k) > self.max_k:
            raise ValueError(f"k={max(self.k)} exceeds `max_k`={self.max_k}; raise `max_k` to allow it")
        return self
