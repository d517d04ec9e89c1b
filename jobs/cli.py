"""The ``clustra`` command line.

Errors a user can cause print one line (``clustra: error: ...``) and exit with status 2;
nothing half-written is left behind (runs and outputs are renamed into place at the end).
"""

from __future__ import annotations

import argparse
import atexit
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cluster_core.errors import ArtifactError, ClustraError

EXIT_USER_ERROR = 2

CommandRegistrar = Callable[[argparse._SubParsersAction], None]


def csv_list(text: str) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]`` (blank items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def csv_ints(text: str) -> list[int]:
    """``3,5,7`` -> ``[3, 5, 7]``; a non-integer raises a clear argparse error."""
    try:
        return [int(item) for item in csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 3,5,7, got {text!r}") from None


def key_values(text: str) -> dict[str, str]:
    """``col=kind,col2=kind`` -> dict."""
    pairs = {}
    for item in csv_list(text):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE pairs separated by commas, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def add_column_options(parser: argparse.ArgumentParser) -> None:
    """--include / --exclude / --kind."""
    parser.add_argument("--include", type=csv_list, help="use only these columns (comma-separated)")
    parser.add_argument("--exclude", type=csv_list, default=[], help="leave these columns out (comma-separated)")
    parser.add_argument("--kind", type=key_values, default={}, metavar="COL=KIND,...", help="force column kinds")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """--scheduler / --device."""
    parser.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: an in-process LocalCluster)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="default: CLUSTRA_DEVICE or auto")


def _train_config(args: argparse.Namespace):
    from cluster_core.config import TrainConfig

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
        "device": args.device or "auto",
        "weights": _floats(args.weight, "--weight"),
        "geo_pairs": args.geo,
        "text_method": args.text_method,
        "text_model": args.text_model,
        "text_batch_size": args.text_batch_size,
        "text_threads": args.text_threads,
        "image_model": args.image_model,
        "image_root": args.image_root,
        "balance": args.balance,
        "kind_weights": _floats(args.kind_weight, "--kind-weight"),
        "reduce": args.reduce,
        "reduce_components": args.reduce_components,
        "view_method": args.view_method,
        "view_sample_rows": args.view_rows,
    }
    return TrainConfig(**{k: v for k, v in fields.items() if v is not None})


def _floats(pairs: dict[str, str] | None, flag: str) -> dict[str, float] | None:
    """``{name: "2"}`` -> ``{name: 2.0}``; a non-number is a one-line user error."""
    if not pairs:
        return None
    try:
        return {k: float(v) for k, v in pairs.items()}
    except ValueError:
        raise UserError(f"{flag} expects NAME=NUMBER pairs, got {pairs}") from None


def add_multimodal_options(parser: argparse.ArgumentParser) -> None:
    """Text / image / geo featurization, block balance, reduction and the embedding view."""
    parser.add_argument("--weight", type=key_values, metavar="COL=W,...", help="multiply a column's block by W")
    parser.add_argument("--geo", type=csv_list, metavar="LAT:LON,...", help="declare latitude:longitude column pairs")
    parser.add_argument("--text-method", dest="text_method", choices=["auto", "embedding", "tfidf"],
                        help="text columns: sentence embeddings or TF-IDF + SVD (default auto: embeddings when installed)")
    parser.add_argument("--text-model", dest="text_model", help="local sentence-transformers directory (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--text-batch-size", dest="text_batch_size", type=int, help="texts per embedding batch (default 64)")
    parser.add_argument("--text-threads", dest="text_threads", type=int, help="torch threads while embedding")
    parser.add_argument("--image-model", dest="image_model", help="TorchScript (.pt) or ONNX (.onnx) image model for embeddings")
    parser.add_argument("--image-root", dest="image_root", help="base directory of relative image paths")
    parser.add_argument("--balance", choices=["column", "none"],
                        help="column (default): each text/image/geo block weighs like one numeric column")
    parser.add_argument("--kind-weight", dest="kind_weight", type=key_values, metavar="KIND=W,...", help="e.g. text=2,image=0.5")
    parser.add_argument("--reduce", choices=["none", "pca", "svd"], help="reduce the combined feature matrix (default none)")
    parser.add_argument("--reduce-components", dest="reduce_components", type=int, help="components kept (default 32)")
    parser.add_argument("--view-method", dest="view_method", choices=["pca", "tsne"], help="2-D embedding view (default pca)")
    parser.add_argument("--view-rows", dest="view_rows", type=int, help="rows in each model's embedding view (default 2000; 0 = none)")


def _backend(args: argparse.Namespace) -> str:
    """Partition type for the chosen device: cuDF on a GPU (when installed), pandas otherwise."""
    from cluster_core.data import partition_backend
    from cluster_core.device import resolve_device

    return partition_backend(resolve_device(args.device))


def cmd_train(args: argparse.Namespace) -> int:
    """clustra train DATA --out RUN_DIR."""
    from cluster_core.data import read_dataset
    from cluster_core.progress import PrintProgress

    from .dask_cluster import dask_client

    config = _train_config(args)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise_user(f"output directory {str(out)!r} already exists; choose another --out or pass --overwrite")
    progress = PrintProgress()
    progress.step(f"reading {args.data}")
    dataset = read_dataset(args.data, backend=_backend(args))
    progress.message(f"{dataset.n_rows:,} rows in {len(dataset.files)} file(s), columns: {', '.join(dataset.columns)}")
    progress.step("starting Dask" if not args.scheduler else f"connecting to {args.scheduler}")
    with dask_client(args.scheduler, device=args.device) as client:
        # imported once the workers are starting: they warm up the same modules meanwhile
        from cluster_core.runs import write_run
        from cluster_core.training import leaderboard_table, train_models

        result = train_models(dataset, config, client=client, progress=progress)
        progress.step(f"writing {out}")
        write_run(result, out, overwrite=args.overwrite)
    progress.finish()
    leaderboard = result.leaderboard()
    print(leaderboard_table(leaderboard))
    print(f"\nbest model: {leaderboard['best']}")
    print(f"run written to {out} (leaderboard.json, models/)")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """clustra apply MODEL DATA --out OUT_DIR."""
    from cluster_core.apply import apply_model
    from cluster_core.data import read_dataset
    from cluster_core.progress import PrintProgress
    from cluster_core.runs import load_model

    from .dask_cluster import dask_client

    progress = PrintProgress()
    model = load_model(args.model)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise_user(f"output directory {str(out)!r} already exists; choose another --out or pass --overwrite")
    progress.step(f"reading {args.data}")
    dataset = read_dataset(args.data, backend=_backend(args))
    with dask_client(args.scheduler, device=args.device):
        summary = apply_model(model, dataset, out, overwrite=args.overwrite, progress=progress)
    progress.finish()
    summary["model_id"] = model.model_id
    print(json.dumps(summary, indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """clustra schema DATA: show the inferred column kinds."""
    from cluster_core.data import read_dataset, sample_frame
    from cluster_core.features import FEATURIZERS
    from cluster_core.schema import infer_schema

    dataset = read_dataset(args.data)
    sample = sample_frame(dataset, args.sample_rows, 0)
    schema = infer_schema(
        sample, include=args.include, exclude=args.exclude, kinds=args.kind, supported_kinds=set(FEATURIZERS)
    )
    print(json.dumps(schema.to_dict(), indent=2) if args.json else schema.format_table())
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """clustra leaderboard RUN_DIR: print a run's leaderboard."""
    from cluster_core.runs import read_leaderboard
    from cluster_core.training import leaderboard_table

    leaderboard = read_leaderboard(args.run)
    print(json.dumps(leaderboard, indent=2) if args.json else leaderboard_table(leaderboard))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """clustra demo: penguins -> train -> leaderboard -> apply."""
    from cluster_core.apply import apply_model
    from cluster_core.config import TrainConfig
    from cluster_core.data import read_dataset
    from cluster_core.progress import PrintProgress
    from cluster_core.runs import load_model, write_run
    from cluster_core.training import leaderboard_table, train_models

    from .dask_cluster import dask_client
    from .demo import DEMO_EXCLUDE, species_agreement, write_penguins

    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    progress = PrintProgress()
    progress.step("writing the Palmer penguins (palmerpenguins package) as hive-partitioned Parquet")
    data = write_penguins(root)
    dataset = read_dataset(str(data))
    progress.message(f"{data}: {dataset.n_rows} rows, columns {', '.join(dataset.columns)}")
    config = TrainConfig(exclude=DEMO_EXCLUDE, seed=args.seed)
    progress.step("starting Dask")
    with dask_client(args.scheduler, device=args.device) as client:
        # imported once the workers are starting: they warm up the same modules meanwhile
        from cluster_core.runs import write_run
        from cluster_core.training import leaderboard_table, train_models

        result = train_models(dataset, config, client=client, progress=progress)
        run_dir = write_run(result, root / "run", overwrite=True)
        best = load_model(run_dir)
        summary = apply_model(best, dataset, root / "scored", overwrite=True, progress=progress)
    progress.finish()
    leaderboard = result.leaderboard()
    print("\nLeaderboard (validation split, ranked by silhouette):")
    print(leaderboard_table(leaderboard))
    print(f"\nbest model: {leaderboard['best']}")
    for cluster in best.clusters:
        print(f"  cluster {cluster['cluster_id']}: {cluster['size']} validation rows — {cluster['name']}")
    print(f"\nrun (leaderboard.json, models/): {run_dir}")
    print(f"scored data (original columns + {', '.join(best.output_columns())}): {summary['out']}")
    print(f"rows per cluster: {summary['cluster_counts']}")
    print(f"agreement with the true species (ARI, species not used in training): {species_agreement(Path(summary['out'])):.3f}")
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


class UserError(ClustraError):
    """A CLI-level problem with the user's arguments."""


def raise_user(message: str) -> None:
    """Stop with a one-line user error."""
    raise UserError(message)


def build_parser(extra: list[CommandRegistrar] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="clustra", description="Clustra: clustering as a service.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a sweep of models on a Parquet dataset")
    train.add_argument("data", help="Parquet file, directory (hive partitions ok), glob, or fsspec URL")
    train.add_argument("--out", required=True, help="run directory to create")
    train.add_argument("--algorithms", type=csv_list, help="comma-separated: kmeans,gmm,gmm-diag,hdbscan (default kmeans,gmm,hdbscan)")
    train.add_argument("--k", type=csv_ints, help="cluster counts, e.g. 3,5,7 (default: chosen from the data size)")
    train.add_argument("--max-k", type=int, dest="max_k", help="largest allowed cluster count (default 100)")
    train.add_argument("--seed", type=int, help="seed for sampling, the split and the algorithms (default 0)")
    train.add_argument("--validation-fraction", type=float, dest="validation_fraction", help="default 0.2")
    train.add_argument("--max-iter", type=int, dest="max_iter", help="iteration cap for KMeans / GMM (default 300)")
    train.add_argument("--kmeans-n-init", type=int, dest="kmeans_n_init", help="k-means++ restarts per KMeans model (default 3)")
    train.add_argument("--persist", choices=["auto", "always", "never"],
                       help="keep features in worker memory (auto: when they fit in half of it) or re-read Parquet each pass")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    add_column_options(train)
    add_multimodal_options(train)
    add_cluster_options(train)
    train.set_defaults(func=cmd_train)

    apply = sub.add_parser("apply", help="add cluster columns to a dataset")
    apply.add_argument("model", help="model directory, or run directory (its best model)")
    apply.add_argument("data", help="Parquet file, directory, glob or URL")
    apply.add_argument("--out", required=True, help="output directory to create")
    apply.add_argument("--overwrite", action="store_true")
    add_cluster_options(apply)
    apply.set_defaults(func=cmd_apply)

    schema = sub.add_parser("schema", help="show the inferred column kinds of a dataset")
    schema.add_argument("data")
    schema.add_argument("--sample-rows", type=int, default=20_000, dest="sample_rows")
    schema.add_argument("--json", action="store_true")
    add_column_options(schema)
    schema.set_defaults(func=cmd_schema)

    board = sub.add_parser("leaderboard", help="print a run's leaderboard")
    board.add_argument("run")
    board.add_argument("--json", action="store_true")
    board.set_defaults(func=cmd_leaderboard)

    demo = sub.add_parser("demo", help="the whole flow on a real dataset (Palmer penguins)")
    demo.add_argument("--out", default="clustra-demo", help="where to write data, run and scores (default ./clustra-demo)")
    demo.add_argument("--seed", type=int, default=0)
    add_cluster_options(demo)
    demo.set_defaults(func=cmd_demo)

    for register in extra or []:
        register(sub)
    return parser


# Modules that contribute sub-commands: each defines ``register(subparsers)`` and imports its
# heavy dependencies (ray, fastapi) only inside the command functions.
COMMAND_MODULES = ("serving.cli", "jobs.jobs_cli")


def _extra_commands() -> list[CommandRegistrar]:
    """``register`` functions of the :data:`COMMAND_MODULES` that are present."""
    import importlib

    registrars: list[CommandRegistrar] = []
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        registrars.append(module.register)
    return registrars


def format_validation_error(exc) -> str:
    """First pydantic error as ``--field: message``."""
    first = exc.errors()[0]
    field = "--" + "-".join(str(p) for p in first.get("loc", ()) if not isinstance(p, int)).replace("_", "-")
    message = first.get("msg", str(exc)).removeprefix("Value error, ")
    return f"{field}: {message}" if field != "--" else message


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clustra`` console script."""
    from pydantic import ValidationError

    parser = build_parser(_extra_commands())
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:
        print(f"clustra: error: {format_validation_error(exc)}", file=sys.stderr)
    except (ClustraError, ArtifactError, FileExistsError, ValueError) as exc:
        print(f"clustra: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("clustra: interrupted", file=sys.stderr)
        return 130
    return EXIT_USER_ERROR


def run() -> None:
    """The ``clustra`` console script: :func:`main`, then a quick exit.

    With torch and scikit-learn imported, the interpreter spends ~0.7 s tearing its modules
    and libraries down after the command finished. The exit handlers still run (they close
    Dask clusters and clients, remove temporary directories, flush the logs); only that
    teardown is skipped. The handler is registered before the command imports those
    libraries, so their own exit handlers run first.
    """
    from .quick_exit import exit_now

    status = [1]  # an uncaught exception exits with 1, as Python's own exit would
    atexit.register(lambda: exit_now(status[0]))
    try:
        status[0] = main()
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
        status[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    sys.exit(status[0])


if __name__ == "__main__":
    run()
