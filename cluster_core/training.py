"""The sweep: featurize, split, fit algorithms x cluster counts, score on validation, rank.

Data path
    Partitions are featurized where they live (one task each) and split into train and
    validation rows by a seeded draw per partition. The blocks stay in worker memory
    when they fit (half the cluster's memory), else they are recomputed from Parquet on
    every pass.
Model path
    When the train matrix is small (``local_fit_max_bytes``) it is gathered into one
    array on a *worker* and every model is one task there, so models train in parallel.
    Otherwise each model runs distributed: per-block statistics reduced on the driver
    (KMeans, GMM) or sample-then-assign (HDBSCAN). Both paths call the same estimator
    code through :class:`~cluster_core.blocks.Blocks`.
Algorithms
    Come from the registry (:mod:`cluster_core.algorithms`): ``needs_k`` decides whether
    a model is swept over the cluster counts, its factory builds the estimator. Estimators
    are built on the driver and shipped to the workers, so a plugin algorithm needs no
    registration there (its module must be importable, as for unpickling any class).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .algorithms import get_algorithm
from .algorithms._base import ClusterEstimator
from .arrow_stream import ParquetPiece, parquet_pieces
from .blocks import ArrayBlocks, Blocks, DaskBlocks, row_count, single_threaded_when_small
from .config import TrainConfig
from .data import Dataset, fit_dataset_partitions, sample_frame
from .device import resolve_device
from .distance import unit_rows
from .drift import SAMPLE_ROWS as DRIFT_SAMPLE_ROWS
from .drift import build_reference, column_references
from .errors import ClustraError, DataError
from .features import FEATURIZERS, FeaturePipeline
from .insights import profile_clusters, run_insights
from .metrics import KnownLabels, assign_all, evaluate_clustering
from .model import ClusteringModel
from .progress import Progress
from .schema import Schema, infer_schema

PROFILE_SAMPLE_ROWS = 20_000
MAX_DEFAULT_K = 30
DENSE_DEFAULT_K = 12  # every count up to here is tried: the k people pick is usually small
SPARSE_STEP = 1.3  # above it, each count about 30% above the previous one


def default_cluster_counts(n_rows: int, max_k: int) -> list[int]:
    """Cluster counts to try when the user gives none.

    Every k from 2 to 12, then about 30% apart (16, 21, 27, ...) up to the limit
    ``min(30, max_k, sqrt(n_rows / 2))``, which is always included.
    """
    upper = int(min(MAX_DEFAULT_K, max_k, max(2, math.floor(math.sqrt(n_rows / 2)))))
    counts = list(range(2, min(DENSE_DEFAULT_K, upper) + 1))
    k = counts[-1]
    while k < upper:
        k = min(upper, max(k + 1, int(round(k * SPARSE_STEP))))
        counts.append(k)
    return counts


@dataclass(frozen=True)
class ModelSpec:
    """One model of the sweep."""

    model_id: str
    algorithm: str
    n_clusters: int | None
    variant: str = ""  # the curve it belongs to: the algorithm name, or NAME-LABEL for swept parameters
    overrides: tuple[tuple[str, Any], ...] = ()  # TrainConfig fields this variant sets

    def build(self, config: TrainConfig, device: str) -> ClusterEstimator:
        """An unfitted estimator for this spec, from its algorithm's registered factory."""
        if self.overrides:
            config = config.model_copy(update=dict(self.overrides))
        return get_algorithm(self.algorithm).build(config, self.n_clusters, device)


def plan_models(config: TrainConfig, n_train: int, n_rows: int) -> list[ModelSpec]:
    """The specs of the sweep; DataError when a cluster count exceeds the training rows."""
    counts = config.k or default_cluster_counts(n_train, config.max_k)
    too_many = [k for k in counts if k > n_train]
    if too_many:
        raise DataError(
            f"k={max(too_many)} is larger than the {n_train} training rows "
            f"(the dataset has {n_rows} rows, {1 - config.validation_fraction:.0%} of them train)"
        )
    specs = []
    for algorithm in config.algorithms:
        entry = get_algorithm(algorithm)
        for variant, overrides in entry.variants(config):
            settings = tuple(sorted(overrides.items()))
            if entry.needs_k:
                specs.extend(ModelSpec(f"{variant}-k{k}", algorithm, k, variant, settings) for k in counts)
            else:
                specs.append(ModelSpec(variant, algorithm, None, variant, settings))
    return specs


def _is_validation(n_rows: int, index: int, seed: int, fraction: float) -> np.ndarray:
    return np.random.default_rng([seed, index]).random(n_rows) < fraction


def featurize_split(part: Any, index: int, pipeline: FeaturePipeline, seed: int, fraction: float):
    """Featurize one partition and split its rows into (train, validation) arrays.

    ``part`` is a pandas (or cuDF) partition, or the :class:`~cluster_core.arrow_stream.ParquetPiece`
    behind it: then only the pipeline's input columns are read, and encoded through Arrow.
    """
    if isinstance(part, ParquetPiece):
        features = part.featurize(pipeline)
    else:
        if hasattr(part, "to_pandas"):  # cuDF partition
            part = part.to_pandas()
        features = pipeline.transform(part)
    is_validation = _is_validation(features.shape[0], index, seed, fraction)
    return features[~is_validation], features[is_validation]


def split_counts(piece: ParquetPiece, index: int, columns: list[str], seed: int, fraction: float) -> tuple[int, int]:
    """(train rows, validation rows) :func:`featurize_split` makes of ``piece``, from its footer alone."""
    n_rows = piece.num_rows(columns)
    n_validation = int(_is_validation(n_rows, index, seed, fraction).sum())
    return n_rows - n_validation, n_validation


def _split_row_counts(parts: list, pieces: list[ParquetPiece] | None, persisted: bool, columns: list[str],
                      seed: int, fraction: float) -> tuple[int, int]:
    """Train and validation rows of the featurized ``parts``: from the Parquet footers when the
    features are streamed from ``pieces`` (counting them would featurize every partition), else
    counted in one pass over both halves."""
    import dask

    if pieces is not None and not persisted:
        counts = dask.compute(*[dask.delayed(split_counts, pure=True)(p, i, columns, seed, fraction)
                                for i, p in enumerate(pieces)])
    else:
        rows = dask.delayed(row_count, pure=True)
        counts = dask.compute(*[(rows(p[0]), rows(p[1])) for p in parts])
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def validation_values(part: Any, index: int, column: str, seed: int, fraction: float) -> np.ndarray:
    """The values of ``column`` on the validation rows of one partition (as :func:`featurize_split` splits it),
    as strings; missing values are None."""
    if hasattr(part, "to_pandas"):  # cuDF partition
        part = part.to_pandas()
    values = part[column]
    is_validation = _is_validation(len(part), index, seed, fraction)
    kept = values[is_validation]
    import pandas as pd  # loaded with the partition already

    # pd.isna: None, NaN, pd.NA (nullable string / integer columns) and NaT are all missing, never a class "<NA>"
    return np.array([None if pd.isna(v) else str(v) for v in kept], dtype=object)


def validation_codes(part: Any, index: int, column: str, seed: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`validation_values` of one partition as (its distinct values, sorted strings; int32 codes into
    them, -1 where missing): what the driver gathers instead of one Python string per row.

    A column of one type (strings, numbers, flags, dates, categories) is factorized by pandas and only
    its distinct values become strings (250,000 rows: ~0.3 s of per-row ``str`` and ``pd.isna`` calls);
    an ``object`` column, whose values may be of several types that compare equal (1 and 1.0) but read
    differently, keeps the per-value strings of :func:`validation_values`.
    """
    import pandas as pd  # loaded with the partition already

    if hasattr(part, "to_pandas"):  # cuDF partition
        part = part.to_pandas()
    if part[column].dtype == object:  # each value as its own string first (None where missing)
        kept = pd.Series(validation_values(part, index, column, seed, fraction), dtype=object)
    else:
        kept = part[column][_is_validation(len(part), index, seed, fraction)]
    local, uniques = pd.factorize(kept)  # missing values (NA, NaN, NaT, None): -1, as pd.isna says
    distinct, inverse = np.unique(np.array([str(v) for v in uniques], dtype=str), return_inverse=True)
    codes = np.full(local.shape[0], -1, np.int32)
    codes[local >= 0] = inverse.reshape(-1)[local[local >= 0]]
    return distinct, codes


def merge_codes(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Partitions' :func:`validation_codes` as one code array over the sorted distinct values of all of them
    (the codes ``np.unique`` of the concatenated strings would give); returns (distinct values, codes)."""
    if not parts:
        return np.array([], dtype=str), np.array([], np.int32)
    distinct = np.unique(np.concatenate([d for d, _ in parts]))
    merged = []
    for local, codes in parts:
        out = np.full(codes.shape[0], -1, np.int32)
        known = codes >= 0
        out[known] = np.searchsorted(distinct, local)[codes[known]]
        merged.append(out)
    return distinct, np.concatenate(merged)


def _column_partitions(dataset: Dataset, column: str) -> list:
    """The partitions of ``dataset.frame`` with ``column`` only (the Parquet reader reads no other column), one
    delayed object per partition; every column's partitions if the projection merged partitions (the rows of
    partition i must stay those the split of partition i saw)."""
    projected = dataset.frame[[column]].to_delayed()
    return projected if len(projected) == dataset.frame.npartitions else dataset.frame.to_delayed()


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


@dataclass
class ModelResult:
    """A fitted (or failed) model of the sweep with its validation metrics."""

    spec: ModelSpec
    estimator: ClusterEstimator | None
    metrics: dict = field(default_factory=dict)
    clusters: list[dict] = field(default_factory=list)
    fit_seconds: float = 0.0
    error: str | None = None
    selection_seconds: float = 0.0

    def entry(self) -> dict:
        """The model's leaderboard entry."""
        metrics = self.metrics
        requested = self.spec.n_clusters
        found = metrics.get("n_clusters_found")
        entry = {
            "model_id": self.spec.model_id,
            "algorithm": self.spec.algorithm,
            "variant": self.spec.variant or self.spec.algorithm,
            "n_clusters": self.estimator.n_clusters_found if self.estimator is not None else requested,
            "requested_clusters": requested,
            "silhouette": metrics.get("silhouette"),
            "davies_bouldin": metrics.get("davies_bouldin"),
            "calinski_harabasz": metrics.get("calinski_harabasz"),
            "noise_fraction": metrics.get("noise_fraction"),
            "n_clusters_found": found,
            # components of a k-model that ended up empty on the validation rows
            "collapsed": requested is not None and found is not None and found < requested,
            "cluster_sizes": metrics.get("cluster_sizes"),
            "cluster_sizes_basis": "validation rows",
            "fit_seconds": round(self.fit_seconds, 3),
            "selection_seconds": round(self.selection_seconds, 3),
            "status": "failed" if self.error else "ok",
            "error": self.error,
        }
        for key in ("stability", "null_stability", "stability_excess", "null_stability_skipped", "bic", "icl", "wcnn",
                    "dunn_owa"):
            entry[key] = metrics.get(key)
        for key in EVALUATION_KEYS:
            if key in metrics:
                entry[key] = metrics[key]
        return entry


EVALUATION_KEYS = ("ari", "nmi", "homogeneity", "completeness")


def _predict_block(block: Any, predict: Any) -> np.ndarray:
    return np.asarray(predict(np.asarray(block)), np.int64)


def _validation_assign(validation: Blocks, predict: Any, label_once: bool = True) -> tuple[Any, np.ndarray | None]:
    """The assign function the validation passes use, and the validation rows' labels when known.

    In-memory rows are labelled once (``label_once``), in parallel threads, and every later
    pass (the metrics' two, the ARI against ``evaluate_against``) reads those labels; Dask
    blocks are labelled in each pass where they live.
    """
    if not label_once or not isinstance(validation, ArrayBlocks) or not isinstance(validation.data, np.ndarray):
        return predict, None
    labels = assign_all(validation, predict)
    return KnownLabels(validation.data, labels, predict), labels


def agreement_with(truth: np.ndarray, labels: np.ndarray) -> dict:
    """ARI, NMI, homogeneity and completeness of ``labels`` against ``truth``, integer codes of the true
    values with -1 where missing (:func:`merge_codes`; missing rows left out; noise, -1 in ``labels``,
    counts as one more cluster)."""
    from .agreement import Contingency, codes

    known = np.asarray(truth) >= 0
    if not known.any():
        return {key: None for key in EVALUATION_KEYS}
    scores = Contingency(np.asarray(truth)[known], codes(np.asarray(labels)[known])).scores()
    return {key: round(float(scores[key]), 4) for key in EVALUATION_KEYS}


def fit_and_evaluate(
    spec: ModelSpec, estimator: ClusterEstimator, config: TrainConfig, train: Blocks, validation: Blocks,
    feature_names: list[str], stability_rows: np.ndarray | None = None, truth: np.ndarray | None = None,
) -> ModelResult:
    """Fit ``estimator`` (unfitted, built from ``spec``) on ``train`` and score it on ``validation``;
    failures are captured, not raised.

    ``stability_rows``: the sweep's stability sample (every model refits on the same rows,
    see :mod:`cluster_core.selection`); ``truth``: the ``evaluate_against`` values of the
    validation rows, in block order.
    """
    from sklearn.base import clone

    from .blocks import concat_partials
    from .selection import discrete_blocks, measure_stability, mixture_criteria, validity_indices

    device = resolve_device(config.device).torch
    started = time.perf_counter()
    try:
        template = clone(estimator)
        estimator = estimator.fit(train)
        fit_seconds = time.perf_counter() - started
        n_clusters = estimator.n_clusters_found
        # cosine metrics see unit rows (their own labelling pass): labelled up front only for the ARI
        assign, validation_labels = _validation_assign(
            validation, estimator.predict, config.metric != "cosine" or truth is not None)
        metrics = evaluate_clustering(
            validation, assign, n_clusters, sample_size=config.silhouette_sample,
            reference_size=config.silhouette_reference, seed=config.seed, device=device, metric=config.metric,
        )
        sample = validation.sample_rows(PROFILE_SAMPLE_ROWS, config.seed)
        clusters = profile_clusters(sample, estimator.predict(sample), feature_names, n_clusters)
        n_validation = max(metrics["n_rows"], 1)
        for profile in clusters:
            profile["size"] = int(metrics["cluster_sizes"].get(str(profile["cluster_id"]), 0))
            profile["size_basis"] = "validation rows"
            profile["share"] = profile["size"] / n_validation
        selection_started = time.perf_counter()
        # BIC/ICL are criteria of the fit: measured on train rows (the stability sample when there is one)
        metrics.update(mixture_criteria(estimator, stability_rows if stability_rows is not None else train.sample_rows(
            PROFILE_SAMPLE_ROWS, config.seed)))
        if stability_rows is not None:
            blocks = discrete_blocks(stability_rows, feature_names)
            metrics.update(measure_stability(template, stability_rows, config.seed, config.stability_pairs, blocks))
            # the indices of the rows the metric sees (unit rows for cosine)
            index_rows = unit_rows(stability_rows) if config.metric == "cosine" else stability_rows
            metrics.update(validity_indices(index_rows, estimator.predict(stability_rows)))
        if truth is not None:
            labels = validation_labels if validation_labels is not None else validation.map_reduce(
                _predict_block, estimator.predict, combine=concat_partials)
            metrics.update(agreement_with(truth, labels))
        selection_seconds = time.perf_counter() - selection_started
        return ModelResult(spec, estimator, metrics, clusters, fit_seconds, selection_seconds=selection_seconds)
    except (ValueError, ClustraError, np.linalg.LinAlgError, RuntimeError) as exc:
        return ModelResult(spec, None, fit_seconds=time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")


def fit_and_evaluate_arrays(
    spec, estimator, config, train: np.ndarray, validation: np.ndarray, feature_names, threads: int = 1,
    stability_rows: np.ndarray | None = None, truth: np.ndarray | None = None,
) -> ModelResult:
    """:func:`fit_and_evaluate` on in-memory arrays (the body of one worker task).

    ``threads``: the task's share of the cluster's threads — more than the worker's own
    one when there are fewer models than worker threads (the others would sit idle).
    """
    import torch

    from ._threads import limit_threads

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        with limit_threads(max(1, threads)):
            return fit_and_evaluate(spec, estimator, config, ArrayBlocks(train), ArrayBlocks(validation), feature_names,
                                    stability_rows, truth)
    finally:
        torch.set_num_threads(previous)


def rank(results: list[ModelResult]) -> list[ModelResult]:
    """Best first: silhouette descending, then Davies–Bouldin ascending; failures last."""

    def key(result: ModelResult):
        sil = result.metrics.get("silhouette")
        db = result.metrics.get("davies_bouldin")
        return (result.error is not None, sil is None, -(sil or 0.0), db if db is not None else math.inf)

    return sorted(results, key=key)


@dataclass
class PreparedData:
    """Featurized train/validation blocks and what produced them."""

    schema: Schema
    pipeline: FeaturePipeline
    train: DaskBlocks
    validation: DaskBlocks
    n_train: int
    n_validation: int
    persisted: bool
    view_sample: Any = None  # raw rows for the embedding view (cluster_core.projection)
    insights_sample: Any = None  # raw rows for insights.json (cluster_core.insights)
    drift_sample: Any = None  # raw rows for each model's drift reference (cluster_core.drift)
    truth: np.ndarray | None = None  # evaluate_against codes of the validation rows (-1: missing), in block order
    stability_rows: np.ndarray | None = None  # the train rows every model's stability refits draw from


def _cluster_memory(client: Any) -> int | None:
    if client is None:
        return None
    workers = client.scheduler_info()["workers"].values()
    limits = [w.get("memory_limit") or 0 for w in workers]
    return int(sum(limits)) if all(limits) and limits else None


def prepare_data(dataset: Dataset, config: TrainConfig, client: Any, progress: Progress) -> PreparedData:
    """Sample, infer the schema, fit the features, featurize and split every partition.

    When the decoded table fits in a quarter of the workers' memory it is kept there, so
    the Parquet files are decoded once for both the sample and the features.
    """
    import dask

    memory = _cluster_memory(client)
    if config.persist != "never" and memory is not None and dataset.nbytes <= memory // 4:
        from .engine import format_bytes

        progress.step(f"loading {format_bytes(dataset.nbytes)} into worker memory")
        dataset = replace(dataset, frame=dataset.frame.persist())
        if client is not None:
            from distributed import wait

            wait(dataset.frame)
    progress.step(f"sampling up to {config.feature_sample_rows:,} of {dataset.n_rows:,} rows for schema and features")
    sample = sample_frame(dataset, config.feature_sample_rows, config.seed)
    exclude = list(config.exclude)
    if config.evaluate_against and config.evaluate_against not in exclude:
        exclude.append(config.evaluate_against)  # the answer key is never a feature
    include = [c for c in config.include if c != config.evaluate_against] if config.include else config.include
    schema = infer_schema(
        sample, include=include, exclude=exclude, kinds=config.kinds, supported_kinds=set(FEATURIZERS),
        geo_pairs=config.geo_pair_tuples(),
    )
    progress.message(schema.format_table())
    pipeline = FeaturePipeline.from_config(schema, config).fit(sample)
    for note in pipeline.fit_notes():
        progress.message(note)
    view_sample = sample if len(sample) <= config.view_sample_rows else sample.sample(config.view_sample_rows, random_state=config.seed)
    insights_rows = config.insights_sample_rows if config.insights else 0
    insights_sample = sample if len(sample) <= insights_rows else sample.sample(insights_rows, random_state=config.seed)
    progress.step(f"featurizing {dataset.frame.npartitions} partition(s) into {pipeline.n_features} features")
    shared = dask.delayed(pipeline, pure=True)
    split = dask.delayed(featurize_split, pure=True, nout=2)
    pieces = parquet_pieces(dataset, pipeline.input_columns)
    if pieces is not None:
        progress.message(f"featurizing reads {len(pipeline.input_columns)} column(s) from Parquet through Arrow (no pandas)")
    sources = pieces if pieces is not None else dataset.frame.to_delayed()
    parts = [split(p, i, shared, config.seed, config.validation_fraction) for i, p in enumerate(sources)]
    estimate = dataset.n_rows * pipeline.n_features * 4
    fits = memory is None or estimate <= memory // 2
    persisted = config.persist == "always" or (config.persist == "auto" and fits)
    if persisted:
        parts = list(dask.persist(*parts))
    elif config.persist == "never":
        progress.message("persist=never: partitions are re-read and featurized on every pass")
    else:
        progress.message(f"features ({estimate / 2**30:.1f} GiB) exceed half the workers' memory: streaming from Parquet")
    n_train, n_validation = _split_row_counts(parts, pieces, persisted, pipeline.input_columns, config.seed,
                                              config.validation_fraction)
    train = DaskBlocks([p[0] for p in parts], pipeline.n_features, n_rows=n_train)
    validation = DaskBlocks([p[1] for p in parts], pipeline.n_features, n_rows=n_validation)
    if n_train < 2 or n_validation < 2:
        raise DataError(
            f"the dataset has {dataset.n_rows} rows: too few for a train/validation split "
            f"(train={n_train}, validation={n_validation}); at least ~10 rows are needed"
        )
    progress.message(f"train rows: {n_train:,}  validation rows: {n_validation:,}  features: {pipeline.n_features}")
    truth = None
    if config.evaluate_against:
        values = dask.delayed(validation_codes, pure=True)
        column = config.evaluate_against
        distinct, truth = merge_codes(list(dask.compute(*[
            values(p, i, column, config.seed, config.validation_fraction) for i, p in enumerate(_column_partitions(dataset, column))
        ])))
        progress.message(f"evaluating every model against {column!r} ({len(distinct)} values; not a feature)")
    stability_rows = train.sample_rows(config.stability_sample, config.seed) if config.stability else None
    drift_sample = sample if len(sample) <= DRIFT_SAMPLE_ROWS else sample.sample(DRIFT_SAMPLE_ROWS, random_state=config.seed)
    return PreparedData(
        schema, pipeline, train, validation, n_train, n_validation, persisted, view_sample.reset_index(drop=True),
        insights_sample=insights_sample.reset_index(drop=True), drift_sample=drift_sample.reset_index(drop=True),
        truth=truth, stability_rows=stability_rows,
    )


def _run_in_threads(specs, estimators, config, train: np.ndarray, validation: np.ndarray, names: list[str],
                    data: PreparedData, progress: Progress) -> list[ModelResult]:
    """Every model in this process, one model per core at a time.

    The kernels (torch, BLAS, numba) release the GIL, so models fitted side by side use every
    core, as one task per model does on a cluster. With fewer models than cores each model gets
    its share of the cores (one model: all of them). Torch and BLAS thread limits are set once
    for the whole sweep (they are process-wide, so no model changes them mid-way).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor, as_completed

    import torch

    from ._threads import limit_threads

    train_blocks, validation_blocks = ArrayBlocks(train), ArrayBlocks(validation)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = max(1, min(len(specs), cores))
    threads_each = max(1, cores // workers)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads_each)
    results = []
    try:
        with limit_threads(threads_each), ThreadPoolExecutor(workers, thread_name_prefix="clustra-model") as pool:
            futures = [pool.submit(fit_and_evaluate, spec, estimator, config, train_blocks, validation_blocks, names,
                                   data.stability_rows, data.truth) for spec, estimator in zip(specs, estimators)]
            for i, future in enumerate(as_completed(futures), 1):
                result = future.result()
                progress.advance(i, len(specs), describe_result(result))
                results.append(result)
    finally:
        torch.set_num_threads(previous)
    return results


def _run_small(specs, config, data: PreparedData, client, progress: Progress) -> list[ModelResult]:
    """Every model as one task on in-memory arrays."""
    import dask

    names = list(data.pipeline.feature_names_)
    estimators = _build_estimators(specs, config)
    train = dask.delayed(_concat, pure=True)(data.train.blocks)
    validation = dask.delayed(_concat, pure=True)(data.validation.blocks)
    results = []
    if client is None:
        train_array, validation_array = dask.compute(train, validation)
        return _run_in_threads(specs, estimators, config, train_array, validation_array, names, data, progress)
    train_future, validation_future = client.compute([train, validation])
    threads = _threads_per_task(client, len(specs))
    futures = [
        client.submit(
            fit_and_evaluate_arrays, spec, estimator, config, train_future, validation_future, names, threads,
            data.stability_rows, data.truth, pure=False
        )
        for spec, estimator in zip(specs, estimators)
    ]
    for i, future in enumerate(_as_completed(client, futures), 1):
        result = future.result()
        progress.advance(i, len(specs), describe_result(result))
        results.append(result)
    return results


def _as_completed(client, futures: list, poll_s: float = 0.5):
    """``futures`` as they finish; ``CancelledError`` once ``client`` is closed.

    A job is stopped by closing its client from another thread (jobs.runner); a wait that the
    closed client never wakes (distributed's ``as_completed`` could miss it under load) would
    keep the stopped job running, so the wait here looks at the client every ``poll_s``.
    """
    from concurrent.futures import CancelledError

    from distributed import wait

    pending = set(futures)
    while pending:
        if client.status in ("closing", "closed"):
            raise CancelledError("the job's Dask client was closed (the job was stopped)")
        try:
            with client.as_current():  # wait() looks for a client; ours need not be the default
                done, pending = wait(pending, timeout=poll_s, return_when="FIRST_COMPLETED")
        except TimeoutError:
            continue
        yield from done


def _build_estimators(specs: list[ModelSpec], config: TrainConfig) -> list[ClusterEstimator]:
    """The unfitted estimators of ``specs``, built here on the driver.

    They get the device *setting*: ``"auto"`` is resolved by the estimator where it fits
    (a worker may have a GPU the driver lacks), as the featurizers resolve theirs.
    """
    return [spec.build(config, config.device) for spec in specs]


def _threads_per_task(client: Any, n_tasks: int) -> int:
    """The cluster's worker threads shared among ``n_tasks`` concurrent model tasks (at least 1)."""
    workers = client.scheduler_info()["workers"].values()
    total = sum(int(w.get("nthreads", 1)) for w in workers) or 1
    return max(1, total // max(1, n_tasks))


def _run_distributed(specs, config, data: PreparedData, progress: Progress) -> list[ModelResult]:
    names = list(data.pipeline.feature_names_)
    results = []
    for i, (spec, estimator) in enumerate(zip(specs, _build_estimators(specs, config)), 1):
        result = fit_and_evaluate(spec, estimator, config, data.train, data.validation, names, data.stability_rows, data.truth)
        progress.advance(i, len(specs), describe_result(result))
        results.append(result)
    return results


def describe_result(result: ModelResult) -> str:
    """One progress line for a finished model."""
    if result.error:
        return f"{result.spec.model_id}: failed ({result.error})"
    m = result.metrics
    sil = "n/a" if m.get("silhouette") is None else f"{m['silhouette']:.3f}"
    noise = f", noise {m['noise_fraction']:.0%}" if m.get("noise_fraction") else ""
    return f"{result.spec.model_id}: {m.get('n_clusters_found')} clusters, silhouette {sil}{noise} ({result.fit_seconds:.1f}s fit)"


@dataclass
class TrainResult:
    """What a sweep produced, best model first."""

    data: PreparedData
    results: list[ModelResult]
    config: TrainConfig
    dataset_path: str
    n_rows: int
    seconds: float
    insights: dict = field(default_factory=dict)  # model id -> insights.json document
    insights_seconds: float = 0.0

    def __post_init__(self) -> None:
        self._models: list[ClusteringModel] | None = None

    def models(self) -> list[ClusteringModel]:
        """A :class:`ClusteringModel` per successful result, in rank order (built once)."""
        if self._models is not None:
            return self._models
        out = []
        sample = self.data.drift_sample
        # every model of the sweep shares the pipeline: the drift sample is featurized once, its
        # columns' bins and counts computed once
        features = self.data.pipeline.transform(sample) if sample is not None and len(sample) else None
        columns = column_references(self.data.pipeline, sample) if features is not None else None
        for result in self.results:
            if result.estimator is None:
                continue
            metadata = {
                "algorithm": result.spec.algorithm,
                "data": self.dataset_path,
                "n_rows": self.n_rows,
                "n_train": self.data.n_train,
                "n_validation": self.data.n_validation,
                "seed": self.config.seed,
                "metric": self.config.metric,
                "fit_seconds": result.fit_seconds,
            }
            clusters = [dict(c, estimated_rows=int(round(c["share"] * self.n_rows))) for c in result.clusters]
            model = ClusteringModel(
                self.data.pipeline, result.estimator, result.spec.model_id,
                metrics=self._entry(result), clusters=clusters, metadata=metadata,
            )
            if features is not None:
                with single_threaded_when_small(features):
                    labels = result.estimator.assign(features).labels.astype(np.int64)
                model.drift_reference = build_reference(model, sample, labels=labels, columns=columns)
            out.append(model)
        self._models = out
        return out

    def _entry(self, result: ModelResult) -> dict:
        """The leaderboard entry plus the cluster sizes estimated for the whole dataset (validation share x rows)."""
        entry = result.entry()
        sizes, scored = entry.get("cluster_sizes"), result.metrics.get("n_rows")
        if sizes and scored:
            entry["estimated_cluster_sizes"] = {c: int(round(n / scored * self.n_rows)) for c, n in sizes.items()}
        return entry

    def leaderboard(self) -> dict:
        """``{"best", "metric", "recommended", "recommended_reason", "models": [entries, best first]}``.

        ``best`` is the top of the silhouette ranking; ``recommended`` the model chosen by
        :func:`cluster_core.selection.recommend` (what apply, publish and the demo use).
        """
        from .selection import recommend

        entries = []
        for position, result in enumerate(self.results, 1):
            entry = self._entry(result)
            entry["rank"] = position
            entries.append(entry)
        best = next((e["model_id"] for e in entries if e["status"] == "ok"), None)
        recommended, reason = recommend(entries)
        board = {"best": best, "metric": "silhouette", "recommended": recommended or best,
                 "recommended_reason": reason, "models": entries}
        if self.config.evaluate_against:
            board["evaluated_against"] = self.config.evaluate_against
        return board


def train_models(dataset: Dataset, config: TrainConfig, *, client: Any = None, progress: Progress | None = None) -> TrainResult:
    """Run the sweep on ``dataset``.

    Parameters
    ----------
    dataset : Dataset
        From :func:`cluster_core.data.read_dataset`.
    config : TrainConfig
    client : distributed.Client, optional
        Where to run; without one, Dask's local threaded scheduler is used.
    progress : Progress, optional

    Raises
    ------
    DataError
        No usable columns, too few rows, a cluster count above the training rows, or
        every model failed.
    MemoryLimitError
        A partition does not fit the workers' memory, or every worker stayed paused for
        memory (:mod:`cluster_core.engine.watchdog`).
    """
    from .engine.watchdog import memory_watchdog

    progress = progress or Progress()
    started = time.perf_counter()
    with memory_watchdog(client) as watchdog:
        return _train_models(dataset, config, client, progress, watchdog, started)


def _train_models(dataset: Dataset, config: TrainConfig, client: Any, progress: Progress, watchdog: Any,
                  started: float) -> TrainResult:
    """The body of :func:`train_models`, watched by ``watchdog`` (None without a cluster)."""
    dataset = fit_dataset_partitions(dataset, client, progress)
    if watchdog is not None:
        watchdog.partition_bytes = dataset.partition_bytes
    data = prepare_data(dataset, config, client, progress)
    specs = plan_models(config, data.n_train, dataset.n_rows)
    small = data.n_train * data.pipeline.n_features * 4 <= config.local_fit_max_bytes
    mode = "one task per model" if small else "distributed fits"
    progress.step(f"training {len(specs)} model(s) ({mode})")
    results = _run_small(specs, config, data, client, progress) if small else _run_distributed(specs, config, data, progress)
    order = {spec.model_id: i for i, spec in enumerate(specs)}
    results.sort(key=lambda r: order[r.spec.model_id])  # ties rank in plan order, not completion order
    ranked = rank(results)
    if all(r.error for r in ranked):
        raise DataError("every model failed: " + "; ".join(f"{r.spec.model_id}: {r.error}" for r in ranked))
    result = TrainResult(data, ranked, config, dataset.path, dataset.n_rows, 0.0)
    if config.insights:
        progress.step(f"insights on {len(data.insights_sample):,} sampled rows")
        result.insights, result.insights_seconds = run_insights(
            result.models(), data.insights_sample, impact_rows=config.impact_sample_rows,
            association_rows=config.association_sample_rows, seed=config.seed, progress=progress,
        )
    result.seconds = time.perf_counter() - started
    return result


__all__ = [
    "EVALUATION_KEYS", "ModelResult", "ModelSpec", "PreparedData", "TrainResult", "default_cluster_counts", "featurize_split",
    "plan_models", "rank", "train_models",
]
