"""Library commands: ``clustra train``, ``apply``, ``rename``, ``schema``, ``leaderboard`` and ``demo``.

Each command parses its flags into library settings and calls one use case of
:mod:`cluster_core.usecases`; what it prints is formatted by :mod:`clustra.cli._format`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ._args import (
    add_cluster_options,
    add_column_options,
    add_json_option,
    cluster_setting,
    csv_list,
    csv_ints,
    key_values,
    numbers,
)
from ._format import RANK_KEYS, curves_table, leaderboard_table, recommendation_lines


def _train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~cluster_core.config.TrainConfig` fields the flags set (unset flags left out)."""
    fields = {
        "algorithms": args.algorithms,
        "k": args.k,
        "max_k": args.max_k,
        "include": args.include,
        "exclude": args.exclude,
        "kinds": args.kind,
        "seed": args.seed,
        "validation_fraction": args.validation_fraction,
        "max_iter": args.max_iter,
        "kmeans_n_init": args.kmeans_n_init,
        "persist": args.persist,
        "device": args.device,
        "metric": args.metric,
        "weights": numbers(args.weight, "--weight"),
        "geo_pairs": args.geo,
        "text_method": args.text_method,
        "text_model": args.text_model,
        "text_batch_size": args.text_batch_size,
        "text_threads": args.text_threads,
        "image_model": args.image_model,
        "image_root": args.image_root,
        "balance": args.balance,
        "kind_weights": numbers(args.kind_weight, "--kind-weight"),
        "reduce": args.reduce,
        "reduce_components": args.reduce_components,
        "view_method": args.view_method,
        "view_sample_rows": args.view_rows,
        "insights": False if args.no_insights else None,
        "stability": False if args.no_stability else None,
        "insights_sample_rows": args.insights_rows,
        "impact_sample_rows": args.impact_rows,
        "association_sample_rows": args.association_rows,
        "evaluate_against": args.evaluate_against,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _series_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """The :class:`~cluster_core.series.SeriesSettings` fields the --series-* flags set, or None without --series-id."""
    from ._args import UsageError

    fields = {
        "time": args.time,
        "values": args.value,
        "method": args.series_method,
        "profile_points": args.series_profile_points,
        "shape_length": args.series_length,
        "max_length": args.series_max_length,
        "min_points": args.series_min_points,
        "dtw_window": args.dtw_window,
    }
    given = [name for name, value in fields.items() if value is not None]
    if args.series_id is None:
        if given:
            flag = "--" + {"values": "value", "method": "series-method", "shape_length": "series-length",
                           "max_length": "series-max-length", "min_points": "series-min-points",
                           "profile_points": "series-profile-points"}.get(given[0], given[0].replace("_", "-"))
            raise UsageError(f"{flag} needs --series-id COL (series mode: one row per series)")
        return None
    if args.time is None:
        raise UsageError("--series-id needs --time COL: the column of the timestamps")
    return {"series_id": args.series_id, **{k: v for k, v in fields.items() if v is not None}}


def _cmd_train_series(args: argparse.Namespace, series: dict[str, Any]) -> int:
    """clustra train DATA --series-id COL --time COL --out RUN_DIR."""
    from cluster_core.progress import PrintProgress
    from cluster_core.series import train_series_run
    from cluster_core.usecases import train_config

    progress = PrintProgress()
    outcome = train_series_run(args.data, series, train_config(_train_settings(args)), out=args.out,
                               overwrite=args.overwrite, cluster=cluster_setting(args), progress=progress)
    progress.finish()
    if outcome.result is not None and hasattr(outcome.result, "leaderboard"):
        leaderboard = outcome.result.leaderboard()
        print(leaderboard_table(leaderboard, args.rank_by))
        print()
        print("\n".join(recommendation_lines(leaderboard)))
    else:
        for entry in outcome.sweep:
            silhouette = "n/a" if entry["silhouette"] is None else f"{entry['silhouette']:.3f}"
            print(f"{entry['model_id']:<20} silhouette {silhouette:>6}  sizes {entry['cluster_sizes']}")
    summary = outcome.summary
    counts = outcome.assignments["cluster_id"].value_counts().sort_index()
    print(f"{summary['n_series_kept']:,} series segmented by {summary['model_id']} ({summary['method']}) into "
          f"{len(counts)} segment(s): " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    if summary["n_series_dropped"]:
        print(f"{summary['n_series_dropped']} series dropped (reasons in series.json)")
    print(f"run written to {outcome.run_dir} (series_assignments.parquet, series_segments.csv, series_profiles.json, "
          f"series.json); clustra apply {outcome.run_dir} LONG_TABLE assigns new series")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """clustra train DATA --out RUN_DIR."""
    from cluster_core.progress import PrintProgress
    from cluster_core.usecases import train_config, train_run

    series = _series_settings(args)
    if series is not None:
        return _cmd_train_series(args, series)
    progress = PrintProgress()
    outcome = train_run(args.data, train_config(_train_settings(args)), out=args.out, overwrite=args.overwrite,
                        cluster=cluster_setting(args), progress=progress)
    progress.finish()
    leaderboard = outcome.leaderboard()
    print(leaderboard_table(leaderboard, args.rank_by))
    print()
    print("\n".join(recommendation_lines(leaderboard)))
    print(f"run written to {outcome.run_dir} (leaderboard.json, selection.json, models/); "
          f"clustra apply / publish {outcome.run_dir} use the recommended model")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """clustra apply MODEL DATA --out OUT_DIR."""
    from cluster_core.progress import PrintProgress
    from cluster_core.usecases import apply_run

    from cluster_core.runs import LEADERBOARD_FILE, chosen_model, read_leaderboard
    from cluster_core.series import apply_series_run, is_series_run

    if is_series_run(args.model):
        print(f"series run {args.model}: assigning each series of the long table", file=sys.stderr)
        progress = PrintProgress()
        summary = apply_series_run(args.model, args.data, args.out, overwrite=args.overwrite,
                                   cluster=cluster_setting(args), device=args.device, progress=progress)
        progress.finish()
        print(json.dumps(summary, indent=2))
        return 0
    if (Path(args.model) / LEADERBOARD_FILE).is_file():
        print(f"using the recommended model of run {args.model}: {chosen_model(read_leaderboard(args.model))}",
              file=sys.stderr)
    progress = PrintProgress()
    summary = apply_run(args.model, args.data, args.out, overwrite=args.overwrite, cluster=cluster_setting(args),
                        device=args.device, progress=progress, explain=args.explain, columns=args.columns)
    progress.finish()
    print(json.dumps(summary, indent=2))
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    """clustra rename MODEL_DIR_OR_RUN --cluster ID --name TEXT."""
    from cluster_core.insights import rename_cluster
    from cluster_core.runs import resolve_model_dir

    model_dir = resolve_model_dir(args.model)
    cluster = rename_cluster(model_dir, args.cluster, args.name)
    print(f"{model_dir}: cluster {cluster['cluster_id']} is now {cluster['name']!r}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """clustra schema DATA: show the inferred column kinds."""
    from cluster_core.data import sample_frame
    from cluster_core.features import FEATURIZERS
    from cluster_core.schema import infer_schema
    from cluster_core.usecases import open_dataset

    sample = sample_frame(open_dataset(args.data), args.sample_rows, 0)
    schema = infer_schema(
        sample, include=args.include, exclude=args.exclude, kinds=args.kind, supported_kinds=set(FEATURIZERS)
    )
    print(json.dumps(schema.to_dict(), indent=2) if args.json else schema.format_table())
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """clustra leaderboard RUN_DIR: print a run's leaderboard."""
    from cluster_core.runs import read_leaderboard, read_selection

    if args.curves:
        selection = read_selection(args.run)
        print(json.dumps(selection, indent=2) if args.json else curves_table(selection))
        return 0
    leaderboard = read_leaderboard(args.run)
    if args.json:
        print(json.dumps(leaderboard, indent=2))
        return 0
    print(leaderboard_table(leaderboard, args.rank_by))
    print()
    print("\n".join(recommendation_lines(leaderboard)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """clustra demo: penguins -> train -> leaderboard -> apply."""
    from cluster_core.datasets import DEMO_EXCLUDE, DEMO_QUESTION, species_agreement, write_penguins
    from cluster_core.engine import describe_choice, open_engine, resolve_engine
    from cluster_core.progress import PrintProgress
    from cluster_core.runs import load_model
    from cluster_core.selection import selection_rule
    from cluster_core.usecases import apply_run, open_dataset, train_config, train_run

    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    progress = PrintProgress()
    print(DEMO_QUESTION)
    progress.step("writing the Palmer penguins (palmerpenguins package) as hive-partitioned Parquet")
    dataset = open_dataset(write_penguins(root))
    config = train_config(exclude=DEMO_EXCLUDE, seed=args.seed, device=args.device)
    engine = resolve_engine(cluster_setting(args), dataset.nbytes)
    progress.step(describe_choice(cluster_setting(args), engine, dataset.nbytes))
    with open_engine(engine, device=args.device) as client:  # one engine for both steps
        outcome = train_run(dataset, config, out=root / "run", overwrite=True, cluster=client, progress=progress)
        best = load_model(outcome.run_dir)  # the run's recommended model
        summary = apply_run(best, dataset, root / "scored", overwrite=True, cluster=client, device=args.device,
                            progress=progress)
    progress.finish()
    leaderboard = outcome.leaderboard()
    print("\nLeaderboard (validation split, ranked by silhouette; * = recommended):")
    print(leaderboard_table(leaderboard))
    print()
    print("\n".join(recommendation_lines(leaderboard)))
    print(f"how it chose: {selection_rule()}")
    print(f"\nthe recommended model {best.model_id} is applied to every row:")
    counts = summary["cluster_counts"]
    for cluster_info in best.clusters:
        rows = counts.get(str(cluster_info["cluster_id"]), counts.get(cluster_info["cluster_id"], "?"))
        print(f"  cluster {cluster_info['cluster_id']}: {rows} rows ({cluster_info['size']} of the validation rows) "
              f"— {cluster_info['name']}")
    print(f"\nrun (leaderboard.json, models/): {outcome.run_dir}")
    print(f"scored data (original columns + {', '.join(best.output_columns())}): {summary['out']}")
    print(f"rows per cluster: {summary['cluster_counts']}")
    print(f"agreement with the true species (ARI, species not used in training): {species_agreement(Path(summary['out'])):.3f}")
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    from cluster_core.algorithms import algorithm_names
    from cluster_core.config import DEFAULT_ALGORITHMS

    train = sub.add_parser("train", help="train a sweep of models on a Parquet dataset")
    train.add_argument("data", help="Parquet file, directory (hive partitions ok), glob, or fsspec URL")
    train.add_argument("--out", required=True, help="run directory to create")
    train.add_argument("--algorithms", type=csv_list,
                       help=f"comma-separated, any of {','.join(algorithm_names())} (default {','.join(DEFAULT_ALGORITHMS)})")
    train.add_argument("--k", type=csv_ints, help="cluster counts, e.g. 3,5,7 (default: chosen from the data size)")
    train.add_argument("--max-k", type=int, dest="max_k", help="largest allowed cluster count (default 100)")
    train.add_argument("--seed", type=int, help="seed for sampling, the split and the algorithms (default 0)")
    train.add_argument("--validation-fraction", type=float, dest="validation_fraction",
                       help="share of rows held out to score the models (default 0.2)")
    train.add_argument("--max-iter", type=int, dest="max_iter", help="iteration cap for KMeans / GMM (default 300)")
    train.add_argument("--kmeans-n-init", type=int, dest="kmeans_n_init", help="k-means++ restarts per KMeans model (default 3)")
    train.add_argument("--metric", choices=["euclidean", "cosine"],
                       help="distance (default euclidean); cosine = spherical k-means, hdbscan/genie on unit-normalized "
                       "rows, cosine silhouette; without --algorithms it runs kmeans,hdbscan,genie (docs/series.md#cosine)")
    train.add_argument("--persist", choices=["auto", "always", "never"],
                       help="keep features in worker memory (auto: when they fit in half of it) or re-read Parquet each pass")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    train.add_argument("--no-insights", dest="no_insights", action="store_true",
                       help="skip insights.json (profiles, observations, heatmap, feature impact, associations)")
    train.add_argument("--no-stability", dest="no_stability", action="store_true",
                       help="skip the stability refits (most of a small sweep's time); the recommendation is then the "
                            "highest silhouette, with no reproducibility check (docs/selection.md)")
    train.add_argument("--insights-rows", dest="insights_rows", type=int,
                       help="sampled rows the insights are computed on (default 5000)")
    train.add_argument("--impact-rows", dest="impact_rows", type=int, help="rows permuted for the feature impact (default 2000)")
    train.add_argument("--association-rows", dest="association_rows", type=int,
                       help="rows the feature associations are computed on (default 2000)")
    train.add_argument("--evaluate-against", dest="evaluate_against", metavar="COL",
                       help="score every model against this column (ARI, NMI, homogeneity, completeness); "
                       "COL is excluded from the features and never used for the recommendation")
    _add_rank_by(train)
    _add_series_options(train)
    add_column_options(train)
    _add_multimodal_options(train)
    add_cluster_options(train)
    train.set_defaults(func=cmd_train)


def _add_series_options(parser: argparse.ArgumentParser) -> None:
    """Series mode (docs/series.md): one row per series of a long table."""
    group = parser.add_argument_group("series mode (a long table: one row per observation; docs/series.md)")
    group.add_argument("--series-id", dest="series_id", metavar="COL", help="cluster series, one row per value of COL")
    group.add_argument("--time", metavar="COL", help="the timestamps (datetime or numbers)")
    group.add_argument("--value", type=csv_list, metavar="COL,...", help="value columns (default: every other numeric column)")
    group.add_argument("--series-method", dest="series_method", choices=["features", "shape", "kshape"],
                       help="features (default: level, trend, seasonality, autocorrelation, volatility, shape profile, "
                       "fed to --algorithms), shape (DTW k-means on z-normalized series) or kshape")
    group.add_argument("--series-length", dest="series_length", type=int,
                       help="points every series is resampled to for shapes and profiles (default 64)")
    group.add_argument("--series-profile-points", dest="series_profile_points", type=int,
                       help="points of the shape profile among the features (default 16)")
    group.add_argument("--series-max-length", dest="series_max_length", type=int,
                       help="longest series allowed, in points of its regular grid (default 10000)")
    group.add_argument("--series-min-points", dest="series_min_points", type=int,
                       help="series with fewer observations are dropped and reported (default 3)")
    group.add_argument("--dtw-window", dest="dtw_window", type=float,
                       help="Sakoe-Chiba band of DTW, a fraction of --series-length (default 0.1)")


def _add_rank_by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rank-by", dest="rank_by", choices=list(RANK_KEYS), default="silhouette",
                        help="order of the printed leaderboard (default silhouette, the stored ranking; "
                        "recommended: the recommended model first)")


def _add_multimodal_options(parser: argparse.ArgumentParser) -> None:
    """Text / image / geo featurization, block balance, reduction and the embedding view."""
    parser.add_argument("--weight", type=key_values, metavar="COL=W,...", help="multiply a column's block by W")
    parser.add_argument("--geo", type=csv_list, metavar="LAT:LON,...", help="declare latitude:longitude column pairs")
    parser.add_argument("--text-method", dest="text_method", choices=["auto", "embedding", "tfidf"],
                        help="text columns: sentence embeddings or TF-IDF + SVD (default auto: embeddings when installed)")
    parser.add_argument("--text-model", dest="text_model",
                        help="local sentence-transformers directory (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--text-batch-size", dest="text_batch_size", type=int, help="texts per embedding batch (default 64)")
    parser.add_argument("--text-threads", dest="text_threads", type=int, help="torch threads while embedding")
    parser.add_argument("--image-model", dest="image_model",
                        help="TorchScript (.pt) or ONNX (.onnx) image model for embeddings")
    parser.add_argument("--image-root", dest="image_root", help="base directory of relative image paths")
    parser.add_argument("--balance", choices=["column", "none"],
                        help="column (default): each text/image/geo block weighs like one numeric column")
    parser.add_argument("--kind-weight", dest="kind_weight", type=key_values, metavar="KIND=W,...",
                        help="multiply every block of a kind, e.g. text=2,image=0.5")
    parser.add_argument("--reduce", choices=["none", "pca", "svd"], help="reduce the combined feature matrix (default none)")
    parser.add_argument("--reduce-components", dest="reduce_components", type=int, help="components kept (default 32)")
    parser.add_argument("--view-method", dest="view_method", choices=["pca", "tsne"], help="2-D embedding view (default pca)")
    parser.add_argument("--view-rows", dest="view_rows", type=int,
                        help="rows in each model's embedding view (default 2000; 0 = none)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``, ``apply``, ``schema``, ``leaderboard`` and ``demo``."""
    _add_train_parser(sub)

    apply = sub.add_parser("apply", help="add cluster columns to a dataset")
    apply.add_argument("model", help="model directory, or run directory (its recommended model)")
    apply.add_argument("data", help="Parquet file, directory, glob or URL")
    apply.add_argument("--out", required=True, help="output directory to create")
    apply.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    apply.add_argument("--explain", action="store_true",
                       help="add runner_up and explanation (the columns that decided each row's cluster; docs/insights.md)")
    apply.add_argument("--columns", type=csv_list, metavar="COL[,COL...]",
                       help="input columns to write before the cluster columns, e.g. a key to join on "
                            "(default: every column)")
    add_cluster_options(apply)
    apply.set_defaults(func=cmd_apply)

    rename = sub.add_parser("rename", help="name a cluster of a model (stored with the model; apply writes it)")
    rename.add_argument("model", help="model directory, or run directory (its best model)")
    rename.add_argument("--cluster", type=int, required=True, help="cluster id")
    rename.add_argument("--name", required=True, help="the new name, e.g. 'FR visitors'")
    rename.set_defaults(func=cmd_rename)

    schema = sub.add_parser("schema", help="show the inferred column kinds of a dataset")
    schema.add_argument("data", help="Parquet file, directory, glob or URL")
    schema.add_argument("--sample-rows", type=int, default=20_000, dest="sample_rows",
                        help="rows sampled to infer the kinds (default 20000)")
    add_json_option(schema, "the schema")
    add_column_options(schema)
    schema.set_defaults(func=cmd_schema)

    board = sub.add_parser("leaderboard", help="print a run's leaderboard")
    board.add_argument("run", help="run directory written by clustra train")
    add_json_option(board, "leaderboard.json")
    board.add_argument("--curves", action="store_true",
                       help="print selection.json: per algorithm, silhouette, Davies-Bouldin, Calinski-Harabasz, "
                       "stability and BIC against k")
    _add_rank_by(board)
    board.set_defaults(func=cmd_leaderboard)

    demo = sub.add_parser("demo", help="the whole flow on a real dataset (Palmer penguins)")
    demo.add_argument("--out", default="clustra-demo", help="where to write data, run and scores (default ./clustra-demo)")
    demo.add_argument("--seed", type=int, default=0, help="seed for sampling, the split and the algorithms (default 0)")
    add_cluster_options(demo)
    demo.set_defaults(func=cmd_demo)
