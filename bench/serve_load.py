"""Load test of the assignment API with wrk, side by side with no-op Ray Serve apps of the same settings.

One command runs everything on loopback::

    .venv/bin/python bench/serve_load.py                # ~35 min on 2 cores
    .venv/bin/python bench/serve_load.py --quick        # one profile, short runs

For each Ray Serve *profile* (environment flags read when Ray starts; one fresh local Ray
instance per profile, in a subprocess) and each *app* (Clustra; ``noop``: the same two
deployments and settings doing nothing; ``noop-1hop``: one deployment answering a constant)
it measures with wrk:

* single-record JSON requests at several concurrencies (throughput, p50, p99);
* 1,000-record requests, JSON and Arrow IPC (records/s).

Targets (issue 4): single-record throughput >= 80% of the no-op app's; bulk >= 200,000 records/s.
Results: a Markdown table on stdout and JSON in ``bench/out/serve_load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _common import ROOT, machine

PROFILES = {
    "default": {},
    "grpc": {"RAY_SERVE_USE_GRPC_BY_DEFAULT": "1"},
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    "haproxy+throughput": {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}
APPS = ("clustra", "noop", "noop-1hop")
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


# -- data, models, bodies (parent) --------------------------------------------------------------
def customers(n: int, seed: int = 0) -> pd.DataFrame:
    """A customer table: numbers, a category, a flag, a timestamp, a region; some values missing."""
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, 4, n)
    centers = np.array([[0.0, 0.0], [6.0, 1.0], [0.0, 7.0], [5.0, 6.0]])
    xy = centers[segment] + rng.normal(0, 1.0, (n, 2))
    frame = pd.DataFrame(
        {
            "spend": xy[:, 0] * 10 + 100,
            "visits": xy[:, 1],
            "plan": np.array(["basic", "pro", "team", "pro"])[segment],
            "is_member": segment % 2 == 1,
            "signup": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300 * 24, n), unit="h"),
            "region": np.array(["north", "south", "east", "west"])[rng.integers(0, 4, n)],
        }
    )
    frame.loc[rng.random(n) < 0.03, "spend"] = np.nan
    return frame


def prepare(workdir: Path) -> dict:
    """Train a KMeans model (k=8) on 20,000 rows, publish it, write the request bodies."""
    from cluster_core.config import TrainConfig
    from cluster_core.data import read_dataset
    from cluster_core.registry import ModelRegistry
    from cluster_core.runs import write_run
    from cluster_core.training import train_models
    from serving.records import write_arrow

    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    customers(20_000).to_parquet(data / "part-0.parquet", index=False)
    result = train_models(read_dataset(str(data)), TrainConfig(algorithms=["kmeans"], k=[8], seed=0))
    run = write_run(result, workdir / "run", overwrite=True)
    registry = ModelRegistry(workdir / "registry")
    registry.publish(run, "customers", alias="production")
    fresh = customers(1_000, seed=1)
    records = json.loads(fresh.to_json(orient="records", date_format="iso"))
    bodies = workdir / "bodies"
    bodies.mkdir(exist_ok=True)
    (bodies / "single.json").write_text(json.dumps({"records": records[:1]}))
    (bodies / "bulk.json").write_text(json.dumps({"records": records}))
    (bodies / "bulk.arrow").write_bytes(write_arrow(fresh))
    return {"registry": registry.url, "bodies": str(bodies)}


# -- one profile (worker subprocess) ---------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_wrk(url: str, body: Path, content_type: str, connections: int, seconds: float, script: Path) -> dict:
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_TYPE=content_type)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    result = json.loads(line[len("RESULT "):])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


ROUTES = {"clustra": "/", "noop": "/noop", "noop-1hop": "/noop1"}


def _deploy_all(registry: str, overrides: dict) -> None:
    """The three apps side by side (idle ones cost next to nothing), so runs can alternate between them."""
    from ray import serve

    from serve_noop import build_noop_app, build_noop_single_app
    from serving.app import build_application

    args = {"registry": registry, **({"model_deployment": True} if "AssignmentModel" in overrides else {})}
    serve.run(build_application(args, overrides), name="clustra", route_prefix=ROUTES["clustra"])
    serve.run(build_noop_app(overrides), name="noop", route_prefix=ROUTES["noop"])
    serve.run(build_noop_single_app(overrides), name="noop-1hop", route_prefix=ROUTES["noop-1hop"])


def _direct_ingress_ports() -> dict[str, int]:
    """App -> the HTTP port its ingress replica listens on itself (direct ingress), where there is one."""
    import psutil

    ports = {}
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(proc.info.get("cmdline") or [])
        for app in APPS:
            if f"ServeReplica:{app}:" in title and ("API" in title or "Single" in title):
                listening = sorted(c.laddr.port for c in proc.net_connections(kind="tcp")
                                   if c.status == "LISTEN" and 30000 <= c.laddr.port <= 31000)
                if listening:
                    ports[app] = listening[0]
    return ports


def _urls(port: int, direct: bool) -> dict[str, dict[str, str]]:
    """Entry point -> app -> assign URL."""
    path = "v1/models/customers/assign"
    urls = {"proxy": {app: f"http://127.0.0.1:{port}{ROUTES[app].rstrip('/')}/{path}" for app in APPS}}
    ports = _direct_ingress_ports() if direct else {}
    if len(ports) == len(APPS):
        urls["direct"] = {app: f"http://127.0.0.1:{ports[app]}{ROUTES[app].rstrip('/')}/{path}" for app in APPS}
    return urls


def worker(args: argparse.Namespace) -> None:
    """Measure the apps under the profile set in this process's environment; print RESULT lines.

    Every scenario runs the three apps back to back, ``--rounds`` times in rotating order,
    so a change in the machine's background load hits them alike; the median run counts.
    """
    import ray
    from ray import serve

    from serving.config import deployment_overrides, serve_config

    bench_dir = str(Path(__file__).resolve().parent)  # replicas import serve_noop from here
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([bench_dir, str(ROOT)])}})
    port = _free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    config = serve_config(model_replicas=args.model_replicas, model_num_cpus=args.model_num_cpus, host="127.0.0.1", port=port,
                          model_deployment=args.model_deployment or None)
    overrides = deployment_overrides(config["applications"][0])
    bodies = Path(args.bodies)
    script = Path(args.workdir) / "post.lua"
    script.write_text(WRK_SCRIPT)
    scenarios = [("single", "single.json", "application/json", c) for c in args.concurrency]
    scenarios += [("bulk-json", "bulk.json", "application/json", c) for c in args.bulk_concurrency]
    scenarios += [("bulk-arrow", "bulk.arrow", "application/vnd.apache.arrow.stream", c) for c in args.bulk_concurrency]
    try:
        _deploy_all(args.registry, overrides)
        for entry, urls in _urls(port, args.direct).items():
            for app in APPS:  # load the model, fill caches
                run_wrk(urls[app], bodies / "single.json", "application/json", 8, args.warmup, script)
            for scenario, body, content_type, connections in scenarios:
                runs: dict[str, list[dict]] = {app: [] for app in APPS}
                for round_ in range(args.rounds):
                    order = APPS[round_ % len(APPS):] + APPS[: round_ % len(APPS)]
                    for app in order:
                        runs[app].append(run_wrk(urls[app], bodies / body, content_type, connections, args.duration, script))
                for app, measured in runs.items():
                    result = sorted(measured, key=lambda r: r["rps"])[len(measured) // 2]
                    result.update(app=app, entry=entry, scenario=scenario, connections=connections,
                                  records=1000 if scenario.startswith("bulk") else 1, rounds=[round(r["rps"], 1) for r in measured])
                    print("RESULT " + json.dumps(result), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()


# -- the whole run (parent) -------------------------------------------------------------------
def run_profile(profile: str, args: argparse.Namespace, prepared: dict, workdir: Path) -> list[dict]:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu", **PROFILES[profile])
    cmd = [sys.executable, __file__, "--worker", "--registry", prepared["registry"], "--bodies", prepared["bodies"],
           "--workdir", str(workdir), "--duration", str(args.duration), "--warmup", str(args.warmup),
           "--concurrency", ",".join(map(str, args.concurrency)), "--bulk-concurrency", ",".join(map(str, args.bulk_concurrency)),
           "--num-cpus", str(args.num_cpus), "--model-replicas", str(args.model_replicas),
           "--model-num-cpus", str(args.model_num_cpus), "--rounds", str(args.rounds)] + ([] if args.direct else ["--no-direct"])
    cmd += ["--model-deployment"] if args.model_deployment else []
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    results = [json.loads(x[len("RESULT "):]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0:
        print(f"profile {profile} failed ({proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
    for r in results:
        r["profile"] = profile
    print(f"# profile {profile}: {len(results)} measurements in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    return results


def _errors(r: dict) -> str:
    return f" ({r['non2xx']} non-2xx, {r['socket_errors']} socket errors)" if r["non2xx"] or r["socket_errors"] else ""


def _versus(r: dict, other: dict | None) -> str:
    """``no-op req/s | ratio`` cells; a no-op run with errors gives no ratio."""
    if other is None:
        return "- | -"
    if _errors(other):
        return f"{other['rps']:,.0f}{_errors(other)} | invalid"
    return f"{other['rps']:,.0f} | {r['rps'] / other['rps']:.0%}"


def table(results: list[dict]) -> str:
    """Markdown: one row per profile/entry/scenario/concurrency; Clustra vs the no-op apps."""
    index = {(r["profile"], r["entry"], r["app"], r["scenario"], r["connections"]): r for r in results}
    lines = ["| profile | entry | scenario | conc. | Clustra req/s | records/s | p50 ms | p99 ms | no-op req/s | ratio | no-op 1-hop req/s | ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (profile, entry, app, scenario, conns), r in index.items():
        if app != "clustra":
            continue
        noop = index.get((profile, entry, "noop", scenario, conns))
        hop1 = index.get((profile, entry, "noop-1hop", scenario, conns))
        lines.append(
            f"| {profile} | {entry} | {scenario}{_errors(r)} | {conns} | {r['rps']:,.0f} | {r['rps'] * r['records']:,.0f} | "
            f"{r['p50_us'] / 1000:.1f} | {r['p99_us'] / 1000:.1f} | {_versus(r, noop)} | {_versus(r, hop1)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", default="default,grpc,throughput,haproxy", help=f"any of {', '.join(PROFILES)}")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2, help="runs per app and scenario, alternating apps (median reported)")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    parser.add_argument("--bulk-concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32], dest="bulk_concurrency")
    parser.add_argument("--num-cpus", type=int, default=4, dest="num_cpus",
                        help="logical CPUs of the local Ray (three apps are deployed at once; default 4)")
    parser.add_argument("--model-replicas", type=int, default=2, dest="model_replicas")
    parser.add_argument("--model-num-cpus", type=float, default=0.5, dest="model_num_cpus")
    parser.add_argument("--model-deployment", action="store_true", dest="model_deployment",
                        help="Clustra with its model deployment (two hops, the default before issue 20) instead of one hop")
    parser.add_argument("--no-direct", action="store_false", dest="direct",
                        help="skip the ingress replicas' own ports where direct ingress is on (throughput profile)")
    parser.add_argument("--quick", action="store_true", help="default profile, 5 s runs")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "serve_load.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--registry", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if shutil.which("wrk") is None:
        sys.exit("serve_load.py needs wrk on the PATH (apt-get install wrk)")
    if args.quick:
        args.profiles, args.duration, args.rounds = "default", 5.0, 1
    workdir = Path(tempfile.mkdtemp(prefix="clustra-serve-bench-"))
    try:
        prepared = prepare(workdir)
        facts = machine()
        results = []
        for profile in args.profiles.split(","):
            results += run_profile(profile, args, prepared, workdir)
        print(f"\n{facts['cpu_count']} cores, load average before: {facts['load_average_1m']:.2f}, after: {os.getloadavg()[0]:.2f}; "
              f"wrk -t1, {args.duration:g} s per run; model replicas: {args.model_replicas} x {args.model_num_cpus} CPU\n")
        print(table(results))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"machine": facts, "args": {k: v for k, v in vars(args).items() if k != "worker"}, "results": results}, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
