"""Typed training settings (defaults documented once, here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .algorithms import check_algorithms
from .errors import InvalidInputError

DEFAULT_ALGORITHMS = ["kmeans", "gmm", "hdbscan", "genie"]


class TrainConfig(BaseModel):
    """What to train and how; every field has a default.

    ``algorithms``: registered algorithms (:func:`cluster_core.algorithms.algorithm_names`):
    the built-in kmeans, gmm (full covariance), gmm-diag, hdbscan, and those of plugins.
    ``k``: cluster counts to sweep (None: chosen from the data size, see
    :func:`cluster_core.training.default_cluster_counts`); each must be <= ``max_k``.
    """

    model_config = ConfigDict(extra="forbid")

    algorithms: list[str] = Field(default_factory=lambda: list(DEFAULT_ALGORITHMS))
    k: list[int] | None = None
    max_k: int = Field(100, ge=2, description="largest cluster count allowed (raise it for more)")
    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    kinds: dict[str, str] = Field(default_factory=dict, description="forced column kinds")
    weights: dict[str, float] = Field(default_factory=dict, description="per-column block weights")
    seed: int = 0
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    feature_sample_rows: int = Field(100_000, ge=10, description="rows the featurizers are fitted on")
    silhouette_sample: int = Field(10_000, ge=100, description="rows scored for the silhouette estimate")
    silhouette_reference: int = Field(
        50_000, ge=0,
        description="above this many validation rows, the scored rows are measured against a stratified sample "
        "of about this many rows instead of all of them (0: always all rows)",
    )
    kmeans_n_init: int = Field(3, ge=1)
    gmm_n_init: int = Field(1, ge=1)
    gmm_reg_covar: float = Field(1e-4, ge=0.0, description="added to covariance diagonals (features are ~unit scale)")
    max_iter: int = Field(300, ge=1)
    hdbscan_min_cluster_size: int | None = Field(None, ge=2)
    hdbscan_min_samples: int | None = Field(None, ge=1)
    hdbscan_max_fit_samples: int = Field(50_000, ge=100)
    genie_gini_thresholds: list[float] = Field(
        default_factory=lambda: [0.1, 0.3, 0.5], description="Gini thresholds swept by genie (one variant each)"
    )
    genie_gini_threshold: float = Field(0.3, ge=0.0, le=1.0, description="Gini threshold of one genie model")
    genie_max_fit_samples: int = Field(20_000, ge=100, description="genie builds its tree on at most this many rows")
    stability: bool = Field(True, description="measure each model's stability under resampling (for the recommendation)")
    stability_sample: int = Field(2_000, ge=50, description="train rows the stability refits are drawn from")
    stability_pairs: int = Field(2, ge=1, description="pairs of refits per model (and per null model)")
    evaluate_against: str | None = Field(
        None, description="column scored against every model (ARI, NMI, ...), excluded from the features, "
        "never used for the recommendation",
    )
    local_fit_max_bytes: int = Field(512 << 20, ge=0, description="train matrices up to this size fit in one task per model")
    persist: str = Field(
        "auto",
        pattern="^(auto|always|never)$",
        description="keep featurized partitions in worker memory: auto = when they fit in half of it; "
        "never = recompute (stream from Parquet) on every pass",
    )
    device: str = "auto"
    # -- multimodal features (text, image, geo), balance, reduction, the embedding view --
    geo_pairs: list[str] = Field(default_factory=list, description="declared LAT:LON column pairs")
    text_method: str = Field("auto", pattern="^(auto|embedding|tfidf)$", description="auto = embeddings when installed, else TF-IDF")
    text_model: str | None = Field(None, description="sentence-transformers directory (default: packaged all-MiniLM-L6-v2)")
    text_batch_size: int = Field(64, ge=1)
    text_threads: int | None = Field(None, ge=1, description="torch threads while embedding (default: the process setting)")
    image_model: str | None = Field(None, description="TorchScript (.pt/.ts) or ONNX (.onnx) image model")
    image_root: str | None = Field(None, description="base directory of relative image paths")
    balance: str = Field("column", pattern="^(column|none)$", description="column = text/image/geo blocks count as one column")
    kind_weights: dict[str, float] = Field(default_factory=dict, description="per-kind block weights, e.g. {'text': 2}")
    reduce: str = Field("none", pattern="^(none|pca|svd)$", description="reduce the combined matrix")
    reduce_components: int = Field(32, ge=1)
    stats_sample_rows: int = Field(2000, ge=10, description="rows the balance and the reduction are fitted on")
    view_method: str = Field("pca", pattern="^(pca|tsne)$", description="2-D projection of the embedding view")
    view_sample_rows: int = Field(2000, ge=0, description="rows shown in each model's embedding view (0 = no view)")
    gallery_size: int = Field(8, ge=0, description="representative images per cluster and image column")

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
        bad = [k for k in value if k < 2]
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
    def _counts_within_max_k(self) -> TrainConfig:
        if self.k and max(self.k) > self.max_k:
            raise ValueError(f"k={max(self.k)} exceeds `max_k`={self.max_k}; raise `max_k` to allow it")
        return self
