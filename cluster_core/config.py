"""Typed training settings (defaults documented once, here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ALGORITHMS = ("kmeans", "gmm", "gmm-diag", "hdbscan")
DEFAULT_ALGORITHMS = ["kmeans", "gmm", "hdbscan"]


class TrainConfig(BaseModel):
    """What to train and how; every field has a default.

    ``algorithms``: any of kmeans, gmm (full covariance), gmm-diag, hdbscan.
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
    kmeans_n_init: int = Field(3, ge=1)
    gmm_n_init: int = Field(1, ge=1)
    gmm_reg_covar: float = Field(1e-4, ge=0.0, description="added to covariance diagonals (features are ~unit scale)")
    max_iter: int = Field(300, ge=1)
    hdbscan_min_cluster_size: int | None = Field(None, ge=2)
    hdbscan_min_samples: int | None = Field(None, ge=1)
    hdbscan_max_fit_samples: int = Field(50_000, ge=100)
    local_fit_max_bytes: int = Field(512 << 20, ge=0, description="train matrices up to this size fit in one task per model")
    persist: str = Field(
        "auto",
        pattern="^(auto|always|never)$",
        description="keep featurized partitions in worker memory: auto = when they fit in half of it; "
        "never = recompute (stream from Parquet) on every pass",
    )
    device: str = "auto"

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one algorithm is required")
        unknown = [a for a in value if a not in ALGORITHMS]
        if unknown:
            raise ValueError(f"unknown algorithm(s) {unknown}; expected any of {list(ALGORITHMS)}")
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

    @model_validator(mode="after")
    def _counts_within_max_k(self) -> TrainConfig:
        if self.k and max(self.k) > self.max_k:
            raise ValueError(f"k={max(self.k)} exceeds max_k={self.max_k}; raise max_k (--max-k) to allow it")
        return self
