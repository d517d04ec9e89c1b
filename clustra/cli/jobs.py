"""``clustra api`` (the jobs service) and ``clustra jobs ...`` (its command-line client).

fastapi, uvicorn and httpx are imported inside the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, TextIO

from cluster_core.text_table import format_table
from jobs.client import DEFAULT_SERVER, ENV_SERVER, TERMINAL, ApiError, JobsClient

from ._args import UsageError, csv_ints
from ._format import insights_summary, leaderboard_table

EXIT_JOB_FAILED = 1
EXIT_WAIT_TIMEOUT = 3
BAR_WIDTH = 30


class ProgressBar:
    """Draws a job's progress: one redrawn line on a terminal, a line per change otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last: tuple[Any, ...] | None = None

    @staticmethod
    def render(job: dict[str, Any]) -> str:
        """``[#####-----]  45% running  training 6 model(s)``."""
        filled = int(round(job["progress"] * BAR_WIDTH))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        step = job.get("step") or ""
        return f"{job['id']} [{bar}] {job['progress'] * 100:3.0f}% {job['state']:<9} {step}"[:160]

    def update(self, job: dict[str, Any]) -> None:
        """Show the job's current state."""
        key = (job["state"], job.get("step"), round(job["progress"], 2))
        if key == self.last:
            return
        self.last = key
        line = self.render(job)
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
            if job["state"] in TERMINAL:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _client(args: argparse.Namespace) -> JobsClient:
    return JobsClient(args.server, args.token, timeout=args.http_timeout)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _finish_wait(job: dict[str, Any]) -> int:
    """Exit status for a waited job: 0 succeeded, 1 ended otherwise, 3 still running."""
    if job["state"] == "succeeded":
        result = job.get("result") or {}
        where = result.get("run_dir") or result.get("out") or job.get("output")
        best = f", best model {result['best']}" if result.get("best") else ""
        print(f"job {job['id']} succeeded{best}: {where}", file=sys.stderr)
        return 0
    if job["state"] in TERMINAL:
        print(f"job {job['id']} {job['state']}: {job.get('error') or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_JOB_FAILED
    print(f"job {job['id']} is still {job['state']} ({job['progress'] * 100:.0f}%)", file=sys.stderr)
    return EXIT_WAIT_TIMEOUT


def _wait(client: JobsClient, job_id: str, args: argparse.Namespace) -> int:
    bar = ProgressBar()
    job = client.wait(job_id, timeout=args.timeout, interval=args.interval, on_update=bar.update)
    if bar.tty and job["state"] not in TERMINAL:
        sys.stderr.write("\n")
    if args.json:
        _print_json(job)
    return _finish_wait(job)


def _after_submit(client: JobsClient, job: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the new job (its id, or with --json the job) and with --wait follow it to the end."""
    if not args.wait:
        if args.json:
            _print_json(job)
        else:
            print(job["id"])
        return 0
    if not args.json:  # with --json, stdout is the finished job's JSON only
        print(job["id"], flush=True)
    return _wait(client, job["id"], args)


def cmd_submit(args: argparse.Namespace) -> int:
    """clustra jobs submit SPEC [--wait]."""
    from jobs.specs import load_spec_file

    spec = load_spec_file(args.spec)
    with _client(args) as client:
        job = client.submit(spec)
        return _after_submit(client, job, args)


def cmd_wait(args: argparse.Namespace) -> int:
    """clustra jobs wait ID: a progress bar until the job has finished."""
    with _client(args) as client:
        return _wait(client, args.job_id, args)


def _age(iso: str | None) -> str:
    import datetime as _dt

    if not iso:
        return "-"
    seconds = (_dt.datetime.now(_dt.timezone.utc) - _dt.datetime.fromisoformat(iso)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def job_table(jobs: list[dict[str, Any]]) -> str:
    """Jobs as a terminal table."""
    rows = [(job["id"], job["kind"], job["state"], f"{job['progress'] * 100:.0f}%", _age(job["created_at"]),
             job.get("name") or "-", (job.get("step") or "-")[:60]) for job in jobs]
    return format_table(("id", "kind", "state", "progress", "created", "name", "step"), rows)


def cmd_list(args: argparse.Namespace) -> int:
    """clustra jobs list [--state S]."""
    with _client(args) as client:
        params = {k: v for k, v in (("state", args.state), ("kind", args.kind), ("parent", args.parent),
                                     ("limit", args.limit), ("offset", args.offset)) if v is not None}
        page = client.request("GET", "/v1/jobs", params=params)
    if args.json:
        _print_json(page)
    else:
        print(job_table(page["jobs"]))
        if page["total"] > page["count"]:
            print(f"({page['count']} of {page['total']} jobs; --limit / --offset for more)")
    return 0


def describe_job(job: dict[str, Any]) -> str:
    """A job's status for people."""
    lines = [
        f"job {job['id']} ({job['kind']}{', ' + job['name'] if job.get('name') else ''}): {job['state']}, "
        f"{job['progress'] * 100:.0f}%",
        f"  step: {job.get('step') or '-'}",
        f"  created {job['created_at']}, queued {job['timings']['queued_seconds']}s, "
        f"running {job['timings']['running_seconds'] if job['timings']['running_seconds'] is not None else '-'}s",
        f"  output: {job.get('output') or '-'}",
    ]
    if job.get("error"):
        lines.append(f"  error: {job['error']}")
    if job.get("result"):
        lines.append(f"  result: {json.dumps(job['result'])}")
    if job.get("parent_id"):
        lines.append(f"  reruns {job['parent_id']}: {json.dumps(job.get('rerun'))}")
    if job.get("reruns"):
        lines.append(f"  rerun by: {', '.join(job['reruns'])}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    """clustra jobs status ID."""
    with _client(args) as client:
        job = client.job(args.job_id)
    if args.json:
        _print_json(job)
    else:
        print(describe_job(job))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """clustra jobs cancel ID."""
    with _client(args) as client:
        job = client.request("POST", f"/v1/jobs/{args.job_id}/cancel")
    note = " (stopping)" if job["state"] == "running" else ""
    print(f"job {job['id']}: {job['state']}{note}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """clustra jobs logs ID [--follow]."""
    after = 0
    with _client(args) as client:
        while True:
            page = client.request("GET", f"/v1/jobs/{args.job_id}/logs", params={"after": after})
            for line in page["lines"]:
                print(f"{line['at'][11:19]}  {line['text']}" if args.timestamps else line["text"], flush=True)
            after = page["next_after"]
            if not args.follow or (page["state"] in TERMINAL and not page["lines"]):
                return 0
            if not page["lines"]:
                time.sleep(args.interval)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """clustra jobs leaderboard ID."""
    with _client(args) as client:
        board = client.request("GET", f"/v1/jobs/{args.job_id}/leaderboard")
    if args.json:
        _print_json(board)
    else:
        print(leaderboard_table(board))
        print(f"\nbest model: {board['best']}  (run {board['run_dir']})")
        if board.get("recommended"):
            print(f"recommended model: {board['recommended']} ({board.get('recommended_reason', '')})")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """clustra jobs rerun ID [--k 3,5] | --model MODEL_ID --k 7."""
    with _client(args) as client:
        if args.model:
            if not args.k or len(args.k) != 1:
                raise UsageError("--model needs exactly one cluster count: --k N")
            job = client.request("POST", f"/v1/jobs/{args.job_id}/models/{args.model}/rerun", json={"k": args.k[0]})
        else:
            job = client.request("POST", f"/v1/jobs/{args.job_id}/rerun", json={"k": args.k})
        return _after_submit(client, job, args)


def _model_of(client: JobsClient, args: argparse.Namespace) -> str:
    """``--model``, else the job's recommended model (as a run directory stands for it)."""
    if args.model:
        return args.model
    model_id = client.recommended_model(args.job_id)
    print(f"using the recommended model of job {args.job_id}: {model_id}", file=sys.stderr)
    return model_id


def cmd_insights(args: argparse.Namespace) -> int:
    """clustra jobs insights ID [--model MODEL_ID]: a model's insights.json."""
    with _client(args) as client:
        document = client.insights(args.job_id, _model_of(client, args))
    if args.json:
        _print_json(document)
    else:
        print(insights_summary(document, observations=args.observations))
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    """clustra jobs rename ID [--model MODEL_ID] --cluster C --name TEXT."""
    with _client(args) as client:
        entry = client.rename_cluster(args.job_id, _model_of(client, args), args.cluster, args.name)
    if args.json:
        _print_json(entry)
    else:
        print(f"job {entry['job_id']}, model {entry['model_id']}: cluster {entry['cluster_id']} is now {entry['name']!r}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """clustra api: serve the jobs REST API (and run the jobs) until interrupted."""
    import socket

    import uvicorn

    from jobs.api import JobService, create_app
    from jobs.settings import ServiceSettings

    settings = ServiceSettings.from_env(
        host=args.host, port=args.port, store=args.store, data_roots=args.data_root or [],
        model_roots=args.model_root or [], output_root=args.output_root,
        scheduler=args.scheduler, workers=args.workers, memory_limit=args.memory_limit, device=args.device,
        max_concurrent_jobs=args.max_concurrent_jobs, max_queued_jobs=args.max_queued_jobs,
        max_request_bytes=args.max_request_bytes, auth_token=args.auth_token, worker_wait_s=args.worker_wait,
        resume=args.resume or None,
    )
    family, kind, proto, _, address = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ApiError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
    service = JobService(settings)
    host, port = sock.getsockname()[:2]
    print(
        f"clustra jobs API on http://{host}:{port} (store {service.store.path}; data roots "
        f"{', '.join(service.policy.data_roots)}; model roots {', '.join(service.policy.model_roots) or 'none'}; "
        f"outputs {service.policy.output_root}; "
        f"dask {settings.scheduler or 'embedded LocalCluster'}; auth {'on' if settings.auth_token else 'off'})",
        file=sys.stderr, flush=True,
    )
    config = uvicorn.Config(create_app(service=service), log_level=args.log_level, timeout_graceful_shutdown=30)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _add_client_options(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument("--server", default=os.environ.get(ENV_SERVER, DEFAULT_SERVER),
                        help=f"jobs API base URL (default: ${ENV_SERVER} or {DEFAULT_SERVER})")
    parser.add_argument("--token", default=os.environ.get("CLUSTRA_AUTH_TOKEN"),
                        help="bearer token (default: $CLUSTRA_AUTH_TOKEN)")
    parser.add_argument("--http-timeout", type=float, default=30.0, dest="http_timeout", help="seconds per request")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print the API's JSON")


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, help="stop waiting after this many seconds (exit status 3)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")


def _register_api(sub: argparse._SubParsersAction) -> None:
    from jobs.settings import DEFAULT_PORT

    api = sub.add_parser("api", help="serve the jobs REST API and run submitted jobs on Dask")
    api.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT} (0: any free port)")
    api.add_argument("--store", help="SQLite job store (default: $CLUSTRA_JOBS_STORE or ~/.clustra/jobs.db)")
    api.add_argument("--data-root", action="append", dest="data_root", metavar="DIR",
                     help="a directory specs may read data from (repeatable; default: the current directory)")
    api.add_argument("--model-root", action="append", dest="model_root", metavar="DIR",
                     help="a directory specs may read model weights from (text_model, image_model; repeatable; "
                          "no default: without one, specs naming weights are refused)")
    api.add_argument("--output-root", dest="output_root", metavar="DIR",
                     help="where job outputs go (default: $CLUSTRA_OUTPUT_ROOT or outputs/ next to the store)")
    api.add_argument("--scheduler", help="Dask scheduler tcp://HOST:PORT (default: $CLUSTRA_DASK_SCHEDULER or an "
                                         "embedded LocalCluster)")
    api.add_argument("--workers", type=int, help="embedded LocalCluster worker processes (default: cores, at most 8)")
    api.add_argument("--memory-limit", dest="memory_limit", help="per embedded worker, e.g. 4GiB (default auto)")
    api.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                     help="where jobs run their kernels (default: $CLUSTRA_DEVICE, else auto)")
    api.add_argument("--max-concurrent-jobs", type=int, dest="max_concurrent_jobs", help="jobs running at once (default 2)")
    api.add_argument("--max-queued-jobs", type=int, dest="max_queued_jobs", help="queue length limit (default 1000)")
    api.add_argument("--max-request-bytes", type=int, dest="max_request_bytes", help="request body limit (default 1 MiB)")
    api.add_argument("--auth-token", dest="auth_token", help="require this bearer token (default: $CLUSTRA_AUTH_TOKEN; "
                                                             "unset: no auth)")
    api.add_argument("--worker-wait", type=float, dest="worker_wait",
                     help="fail running jobs after this many seconds without a Dask worker (default 300)")
    api.add_argument("--resume", action="store_true",
                     help="queue again the jobs a stopped process left running (default: mark them interrupted)")
    api.add_argument("--log-level", dest="log_level", default="info",
                     choices=["critical", "error", "warning", "info", "debug"], help="uvicorn's log level (default info)")
    api.set_defaults(func=cmd_api)


def _register_jobs(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="submit, watch and manage jobs of a clustra api service")
    commands = jobs.add_subparsers(dest="jobs_command", required=True)

    submit = commands.add_parser("submit", help="submit a job spec (YAML or JSON file; - for stdin)")
    submit.add_argument("spec", help="the spec file (YAML or JSON); - reads standard input")
    submit.add_argument("--wait", action="store_true", help="show a progress bar until the job has finished")
    _add_client_options(submit)
    _add_wait_options(submit)
    submit.set_defaults(func=cmd_submit)

    listing = commands.add_parser("list", help="list jobs, newest first")
    listing.add_argument("--state", choices=["queued", "running", "succeeded", "failed", "cancelled", "interrupted"],
                         help="only jobs in this state")
    listing.add_argument("--kind", choices=["train", "apply"], help="only jobs of this kind")
    listing.add_argument("--parent", metavar="ID", help="only reruns of this job")
    listing.add_argument("--limit", type=int, help="at most this many jobs (default 100, at most 1000)")
    listing.add_argument("--offset", type=int, help="skip this many jobs (newest first; default 0)")
    _add_client_options(listing)
    listing.set_defaults(func=cmd_list)

    for name, func, text in (("status", cmd_status, "a job's state, progress, timings, error and result"),
                             ("cancel", cmd_cancel, "cancel a queued or running job"),
                             ("leaderboard", cmd_leaderboard, "a succeeded train job's leaderboard")):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id", metavar="ID", help="the job's id")
        _add_client_options(command, json_flag=name != "cancel")
        command.set_defaults(func=func)

    logs = commands.add_parser("logs", help="a job's log")
    logs.add_argument("job_id", metavar="ID", help="the job's id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job has finished")
    logs.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    logs.add_argument("--interval", type=float, default=1.0, help="seconds between polls with --follow (default 1)")
    _add_client_options(logs, json_flag=False)
    logs.set_defaults(func=cmd_logs)

    wait = commands.add_parser("wait", help="a progress bar until the job has finished (exit 0: succeeded)")
    wait.add_argument("job_id", metavar="ID", help="the job's id")
    _add_client_options(wait)
    _add_wait_options(wait)
    wait.set_defaults(func=cmd_wait)

    rerun = commands.add_parser("rerun", help="rerun a train job's sweep (--k) or one of its models (--model, --k)")
    rerun.add_argument("job_id", metavar="ID", help="the train job to rerun")
    rerun.add_argument("--k", type=csv_ints, help="new cluster counts, e.g. 3,5,7 (one with --model)")
    rerun.add_argument("--model", help="rerun only this model of the job (e.g. kmeans-k5)")
    rerun.add_argument("--wait", action="store_true", help="show a progress bar until the new job has finished")
    _add_client_options(rerun)
    _add_wait_options(rerun)
    rerun.set_defaults(func=cmd_rerun)

    insights = commands.add_parser("insights", help="a trained model's insights (profiles, observations, feature "
                                                    "impact, associations; docs/insights.md)")
    insights.add_argument("job_id", metavar="ID", help="a succeeded train job")
    insights.add_argument("--model", metavar="MODEL_ID", help="a model of the job (default: its recommended model)")
    insights.add_argument("--observations", type=int, default=3, metavar="N",
                          help="sentences shown per cluster (default 3; --json prints them all)")
    _add_client_options(insights)
    insights.set_defaults(func=cmd_insights)

    rename = commands.add_parser("rename", help="name a cluster of a trained model (stored with the model; apply "
                                                "writes it as cluster_name)")
    rename.add_argument("job_id", metavar="ID", help="a succeeded train job")
    rename.add_argument("--model", metavar="MODEL_ID", help="a model of the job (default: its recommended model)")
    rename.add_argument("--cluster", type=int, required=True, help="cluster id")
    rename.add_argument("--name", required=True, help="the new name, e.g. 'FR visitors'")
    _add_client_options(rename)
    rename.set_defaults(func=cmd_rename)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``api`` and ``jobs`` to the ``clustra`` command."""
    _register_api(subparsers)
    _register_jobs(subparsers)


__all__ = ["ApiError", "JobsClient", "ProgressBar", "register"]
