"""Single-record latency and bulk throughput of the default `clustra serve`, next to a no-op Ray Serve app.

One command, one run, loopback::

    .venv/bin/python bench/serve_latency.py            # ~3 min on 2 cores
    .venv/bin/python bench/serve_latency.py --profiles default,haproxy

Per *profile* (a fresh local Ray in a subprocess) it deploys, on one Ray Serve instance:

* ``clustra`` -- the application exactly as `clustra serve` deploys it by default
  (:func:`serving.config.serve_config` with no options, the same ``ray.init`` and
  ingress choice; ``default`` = host 127.0.0.1 and ``--ingress auto``: HAProxy with every port
  on 127.0.0.1 where Ray has it; ``proxy`` = host 127.0.0.1 and ``--ingress proxy``: Ray
  Serve's Python proxy, the default before; ``haproxy`` = host 0.0.0.0, HAProxy as Ray binds it);
* ``noop`` -- one FastAPI deployment answering a constant (``bench/serve_noop.py``), with the
  same ingress options: Ray Serve's own floor for one request;
* ``two-hop`` -- Clustra with its model deployment (`clustra serve --model-deployment`, the
  default before issue 20: ingress -> multiplexed, batched ``AssignmentModel``), one model
  replica: what the one-hop default replaced, measured in the same run.

Then:

* **latency**: a plain Python client (``http.client``), one request at a time, a new TCP
  connection per request, one JSON record per request (each a different record of a fresh
  1,000-row sample, the same ones for both apps); the apps alternate every
  ``--requests`` requests for ``--rounds`` rounds; p50 and p99 of each and the ratio;
* **bulk**: wrk posting 1,000-record Arrow IPC bodies for ``--bulk-seconds`` at each of
  ``--bulk-connections`` (records/s), and the no-op at the highest concurrency.

Targets (issue 20): p50 <= 1.5x the no-op's p50; bulk >= 200,000 records/s on the default
configuration. JSON in ``bench/out/serve_latency.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import ROOT, machine
from serve_load import WRK_SCRIPT, _free_port, prepare, run_wrk

# profile -> the HTTP host and the --ingress `clustra serve` is given
PROFILES = {"default": ("127.0.0.1", "auto"), "proxy": ("127.0.0.1", "proxy"), "haproxy": ("0.0.0.0", "auto")}
ROUTES = {"clustra": "/", "noop": "/noop", "two-hop": "/twohop"}
ASSIGN = "v1/models/customers/assign"


def _path(app: str) -> str:
    return f"{ROUTES[app].rstrip('/')}/{ASSIGN}"


def one_request(port: int, path: str, body: bytes) -> float:
    """Seconds for one POST on a new connection: connect, send, read the whole answer, close."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"POST {path} answered {response.status}: {answer[:300]!r}")
    return elapsed


def latency(port: int, bodies: list[bytes], requests: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Per app, the seconds of ``requests * rounds`` sequential requests, apps alternating every ``requests``.

    Request ``i`` carries record ``i`` of ``bodies`` (cycled): every app gets the same distinct records.
    """
    apps = list(ROUTES)
    for app in apps:
        for i in range(warmup):
            one_request(port, _path(app), bodies[-1 - i % len(bodies)])
    seconds: dict[str, list[float]] = {app: [] for app in apps}
    for round_ in range(rounds):
        chunk = [bodies[(round_ * requests + i) % len(bodies)] for i in range(requests)]
        shift = round_ % len(apps)
        for app in apps[shift:] + apps[:shift]:
            seconds[app] += [one_request(port, _path(app), body) for body in chunk]
    return seconds


def _wait_ready(port: int, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer on port {port} after {timeout_s:.0f}s")
        time.sleep(0.5)


def _replicas(app: str) -> int:
    import psutil

    count = 0
    for proc in psutil.process_iter(["cmdline"]):
        if any(f"ServeReplica:{app}:" in part for part in proc.info.get("cmdline") or []):
            count += 1
    return count


def worker(args: argparse.Namespace) -> None:
    """Deploy the default Clustra app and the no-op as `clustra serve` would, measure, print RESULT lines."""
    from serving.ingress import choose_ingress, use_ingress

    host, requested = PROFILES[args.profile]
    port = _free_port()
    choice = choose_ingress(requested, host)  # what `clustra serve --host HOST --ingress ...` chooses
    use_ingress(choice, host)  # set before Ray is imported
    print(f"# {args.profile}: {choice.describe()}", file=sys.stderr, flush=True)

    import ray
    from ray import serve

    from serve_noop import build_noop_single_app
    from serving.app import build_application
    from serving.config import deployment_overrides, serve_config
    from serving.loopback import keep_ray_on_loopback, ray_init_options
    config = serve_config(registry=args.registry, host=host, port=port)
    app_config = config["applications"][0]
    options = ray_init_options(host, args.num_cpus)
    if "_node_ip_address" in options:
        keep_ray_on_loopback()
    bench_dir = str(Path(__file__).resolve().parent)  # replicas import serve_noop from here
    ray.init(**options, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([bench_dir, str(ROOT)])}})
    try:
        serve.start(proxy_location="HeadOnly", http_options=config["http_options"])
        overrides = deployment_overrides(app_config)
        serve.run(build_application(app_config["args"], overrides), name="clustra", route_prefix=ROUTES["clustra"])
        serve.run(build_noop_single_app(overrides), name="noop", route_prefix=ROUTES["noop"])
        two_hop = serve_config(registry=args.registry, host=host, port=port, model_deployment=True, model_replicas=1)
        two_hop_app = two_hop["applications"][0]
        serve.run(build_application(two_hop_app["args"], deployment_overrides(two_hop_app)), name="two-hop",
                  route_prefix=ROUTES["two-hop"])
        _wait_ready(port)
        bodies = Path(args.bodies)
        records = json.loads((bodies / "bulk.json").read_text())["records"]  # 1,000 fresh records, one per request
        singles = [json.dumps({"records": [record]}).encode() for record in records]
        seconds = latency(port, singles, args.requests, args.rounds, args.warmup)
        for app, values in seconds.items():
            ms = np.asarray(values) * 1000
            print("RESULT " + json.dumps({"kind": "latency", "app": app, "n": len(ms), "p50_ms": float(np.percentile(ms, 50)),
                                          "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)),
                                          "mean_ms": float(ms.mean())}), flush=True)
        if shutil.which("wrk"):
            script = Path(args.workdir) / "post.lua"
            script.write_text(WRK_SCRIPT)
            url = {app: f"http://127.0.0.1:{port}{_path(app)}" for app in ROUTES}
            arrow = "application/vnd.apache.arrow.stream"
            run_wrk(url["clustra"], bodies / "bulk.arrow", arrow, 8, 2, script)  # warm-up
            runs = [("clustra", c) for c in args.bulk_connections]
            runs += [(app, max(args.bulk_connections)) for app in ("two-hop", "noop")]
            for app, connections in runs:
                result = run_wrk(url[app], bodies / "bulk.arrow", arrow, connections, args.bulk_seconds, script)
                result.update(kind="bulk", app=app, connections=connections, records_per_s=result["rps"] * 1000)
                print("RESULT " + json.dumps(result), flush=True)
        else:
            print("# wrk not found: no bulk measurement (apt-get install wrk)", file=sys.stderr, flush=True)
        print("RESULT " + json.dumps({"kind": "setup", "ingress": choice.describe(), "assigning_replicas": _replicas("clustra")}),
              flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()


def run_profile(profile: str, args: argparse.Namespace, prepared: dict, workdir: Path) -> list[dict]:
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    env.pop("RAY_SERVE_ENABLE_HA_PROXY", None)
    cmd = [sys.executable, __file__, "--worker", "--profile", profile, "--registry", prepared["registry"],
           "--bodies", prepared["bodies"], "--workdir", str(workdir), "--requests", str(args.requests),
           "--rounds", str(args.rounds), "--warmup", str(args.warmup), "--bulk-seconds", str(args.bulk_seconds),
           "--bulk-connections", ",".join(map(str, args.bulk_connections))]
    cmd += ["--num-cpus", str(args.num_cpus)] if args.num_cpus else []
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    print("\n".join(x for x in proc.stderr.splitlines() if x.startswith("# ")), file=sys.stderr, flush=True)
    if proc.returncode != 0:
        print(f"profile {profile} failed ({proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
    results = [json.loads(x[len("RESULT "):]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    for r in results:
        r["profile"] = profile
    return results


def report(results: list[dict]) -> str:
    """Markdown tables: latency (with the ratio and target), bulk (with the target)."""
    lines = ["| profile | app | requests | p50 ms | p90 ms | p99 ms | p50 / no-op p50 | target <= 1.5x |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    by = {(r["profile"], r["app"]): r for r in results if r["kind"] == "latency"}
    for (profile, app), r in by.items():
        noop = by.get((profile, "noop"))
        ratio = r["p50_ms"] / noop["p50_ms"] if noop else float("nan")
        verdict = "" if app != "clustra" else ("met" if ratio <= 1.5 else "missed")
        lines.append(f"| {profile} | {app} | {r['n']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{'' if app == 'noop' else f'{ratio:.2f}x'} | {verdict} |")
    lines += ["", "| profile | app | connections | req/s | records/s | p50 ms | p99 ms | target >= 200k records/s |",
              "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if r["kind"] == "bulk":
            errors = f" ({r['non2xx']} non-2xx, {r['socket_errors']} socket errors)" if r["non2xx"] or r["socket_errors"] else ""
            verdict = "" if r["app"] != "clustra" else ("met" if r["records_per_s"] >= 200_000 and not errors else "missed")
            lines.append(f"| {r['profile']} | {r['app']}{errors} | {r['connections']} | {r['rps']:,.0f} | {r['records_per_s']:,.0f} | "
                         f"{r['p50_us'] / 1000:.1f} | {r['p99_us'] / 1000:.1f} | {verdict} |")
    setups = [f"{r['profile']}: {r['ingress']}; Clustra replicas at the end: {r['assigning_replicas']}"
              for r in results if r["kind"] == "setup"]
    return "\n".join(lines + [""] + setups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", default="default", help=f"any of {', '.join(PROFILES)}")
    parser.add_argument("--requests", type=int, default=150, help="sequential requests per app per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; the apps alternate within each")
    parser.add_argument("--warmup", type=int, default=20, help="requests per app before measuring")
    parser.add_argument("--bulk-seconds", type=float, default=5.0, dest="bulk_seconds")
    parser.add_argument("--bulk-connections", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32],
                        dest="bulk_connections")
    parser.add_argument("--num-cpus", type=int, default=None, dest="num_cpus",
                        help="logical CPUs of the local Ray (default: all, as `clustra serve`)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "serve_latency.json"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--registry", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    workdir = Path(tempfile.mkdtemp(prefix="clustra-serve-latency-"))
    try:
        prepared = prepare(workdir)
        facts = machine()
        results: list[dict] = []
        for profile in args.profiles.split(","):
            results += run_profile(profile, args, prepared, workdir)
        print(f"\n{facts['cpu_count']} cores, load average before: {facts['load_average_1m']:.2f}, "
              f"after: {os.getloadavg()[0]:.2f}\n")
        print(report(results))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"machine": facts, "args": {k: v for k, v in vars(args).items() if k != "worker"},
                                   "results": results}, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
