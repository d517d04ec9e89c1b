"""Drill: kill a model replica of the assignment API under load; count what the clients saw.

::

    .venv/bin/python bench/serve_replica_drill.py                     # 1 model replica, ~2 min on 2 cores
    .venv/bin/python bench/serve_replica_drill.py --model-replicas 2  # another replica takes over

Starts `clustra serve --host 127.0.0.1` on a fresh registry, sends ``--rate`` requests/s of
``--records``-record JSON requests, kills (SIGKILL) the ``AssignmentModel`` replica after ``--warmup``
seconds, at a moment it is scoring, and keeps the load on for ``--after`` seconds. Reports: answers by status (target:
no 500, no connection error), 503s (each must carry ``Retry-After``), requests retried or
failed on replica loss (``clustra_replica_loss_requests_total``), recovery (kill → the first
200 of a request sent after the kill) and the longest gap between two 200s.
Results: a summary on stdout and JSON in ``bench/out/serve_replica_drill.json``.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import psutil

from _common import machine, write_result
from _serve_drill import Load, Service, metric, prepare


def model_replicas(service: Service) -> list[psutil.Process]:
    root = psutil.Process(service.process.pid)
    found = []
    for process in root.children(recursive=True):
        try:
            if any("ServeReplica:clustra:AssignmentModel" in part for part in process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def wait_until_busy(process: psutil.Process, timeout_s: float = 10.0) -> bool:
    """Wait for a 50 ms window in which ``process`` used more than half a core: a request is being scored."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = sum(process.cpu_times()[:2])
        time.sleep(0.05)
        if sum(process.cpu_times()[:2]) - before > 0.025:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    parser.add_argument("--records", type=int, default=1000, help="records per request (default 1,000: a busy replica)")
    parser.add_argument("--model-replicas", type=int, default=1, dest="model_replicas")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=25.0, help="seconds of load after the kill")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clustra-replica-drill-") as tmp:
        workdir = Path(tmp)
        prepared = prepare(workdir, n_records=args.records)
        service = Service(workdir, prepared["registry"].url, "--model-replicas", str(args.model_replicas))
        try:
            ready_s = service.wait_ready("customers")
            load = Load(service.url, "/v1/models/customers/assign", {"records": prepared["records"]}, rate=args.rate).start()
            time.sleep(args.warmup)
            before = metric(service.url, "clustra_replica_loss_requests_total")
            victims = model_replicas(service)
            assert len(victims) == args.model_replicas, f"found {len(victims)} model replicas"
            busy = wait_until_busy(victims[0])
            victims[0].kill()
            killed_at = time.monotonic()
            time.sleep(args.after)
            answers = load.stop()
            after = metric(service.url, "clustra_replica_loss_requests_total")
        finally:
            service.stop()

    statuses = collections.Counter(a.status for a in answers)
    ok_after = [a for a in answers if a.status == 200 and a.sent >= killed_at]
    done_200 = sorted(a.done for a in answers if a.status == 200)
    gaps = [b - a for a, b in zip(done_200, done_200[1:])]
    lost = {key.strip("{}").split("=")[1].strip('"'): after.get(key, 0) - before.get(key, 0) for key in after}
    result = {
        "machine": machine(),
        "settings": vars(args),
        "ready_s": round(ready_s, 1),
        "killed_while_scoring": busy,
        "requests": len(answers),
        "by_status": {str(k): v for k, v in sorted(statuses.items())},
        "answered_500": statuses.get(500, 0),
        "answered_503": statuses.get(503, 0),
        "connection_errors": statuses.get(0, 0),
        "503_without_retry_after": sum(1 for a in answers if a.status == 503 and not a.retry_after),
        "replica_loss": lost,
        "recovery_s": round(ok_after[0].done - killed_at, 2) if ok_after else None,
        "longest_gap_between_200s_s": round(max(gaps), 2) if gaps else None,
    }
    path = write_result("serve_replica_drill", result)
    print({k: v for k, v in result.items() if k != "machine"})
    print(f"written to {path}")
    failed = result["answered_500"] + result["connection_errors"] + result["503_without_retry_after"]
    raise SystemExit(1 if failed or not ok_after else 0)


if __name__ == "__main__":
    main()
