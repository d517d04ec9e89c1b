"""Drill: how long a moved alias takes to be served, under load.

::

    .venv/bin/python bench/serve_alias_drill.py             # 6 moves at 20 requests/s, ~2 min on 2 cores
    .venv/bin/python bench/serve_alias_drill.py --fresh     # each move to a version published just before

Starts `clustra serve --host 127.0.0.1` with the shipped defaults (``refresh_interval_s`` 2 s),
sends ``--rate`` requests/s to ``customers?alias=live``, and moves ``live`` between versions 1
and 2 every ``--every`` seconds. The pick-up latency of a move is the time from the alias write
to the first 200 naming the new version of a request sent after the write. Target (README):
every move within ``refresh_interval_s``.
Results: a summary on stdout and JSON in ``bench/out/serve_alias_drill.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine, write_result
from _serve_drill import Load, Service, prepare

REFRESH_INTERVAL_S = 2.0  # the shipped serving/serve_config.yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    parser.add_argument("--moves", type=int, default=6)
    parser.add_argument("--every", type=float, default=6.0, help="seconds between moves")
    parser.add_argument("--fresh", action="store_true",
                        help="move the alias to a newly published version each time (never served before)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clustra-alias-drill-") as tmp:
        workdir = Path(tmp)
        prepared = prepare(workdir)
        registry = prepared["registry"]
        service = Service(workdir, registry.url, "--model-replicas", "1")
        moves: list[tuple[float, int]] = []
        try:
            ready_s = service.wait_ready("customers")
            body = {"records": prepared["records"][:5]}
            load = Load(service.url, "/v1/models/customers/assign?alias=live", body, rate=args.rate).start()
            Load(service.url, "/v1/models/customers/assign?version=2", body, rate=2, workers=1).start().stop()  # v2 loaded
            time.sleep(args.every)
            for index in range(args.moves):
                if args.fresh:
                    model = prepared["run"] / "models" / ("gmm-k4" if index % 2 == 0 else "kmeans-k4")
                    version = registry.publish(model, "customers")["version"]
                else:
                    version = 2 if index % 2 == 0 else 1
                registry.set_alias("customers", "live", version)
                moves.append((time.monotonic(), version))
                time.sleep(args.every)
            answers = load.stop()
        finally:
            service.stop()

    latencies = []
    for moved_at, version in moves:
        seen = [a.done for a in answers if a.sent >= moved_at and a.status == 200 and a.version == version]
        latencies.append(round(seen[0] - moved_at, 2) if seen else None)
    measured = [x for x in latencies if x is not None]
    result = {
        "machine": machine(),
        "settings": vars(args),
        "ready_s": round(ready_s, 1),
        "requests": len(answers),
        "non_200": sum(1 for a in answers if a.status != 200),
        "refresh_interval_s": REFRESH_INTERVAL_S,
        "pickup_s": latencies,
        "pickup_median_s": statistics.median(measured) if measured else None,
        "pickup_max_s": max(measured) if measured else None,
    }
    path = write_result("serve_alias_drill", result)
    print({k: v for k, v in result.items() if k != "machine"})
    print(f"written to {path}")
    late = [x for x in latencies if x is None or x > REFRESH_INTERVAL_S + 0.5]
    raise SystemExit(1 if late or result["non_200"] else 0)


if __name__ == "__main__":
    main()
