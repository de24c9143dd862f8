"""Load test: the tokenizer proxy in front of ``tfxformers serve`` vs the textbook in-process FastAPI app.

``make load`` runs it (it is not named bench_*.py, so ``make bench`` does not: it takes ~20 minutes).

Run (the lock keeps other benchmarks off the 2 shared cores):

    flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/load_bench.py            # ~20 min with the soak
    flock /tmp/tfxformers-heavy.lock .venv/bin/python bench/load_bench.py --quick    # ~4 min smoke run

Both services classify with the same trained MiniLM sentiment classifier (``--trained``, a
``tfxformers train classifier`` output; exported into ``--model-base`` if not there yet), on 127.0.0.1,
and both get the same Locust load (``bench/locustfile.py``: one held-out Rotten Tomatoes snippet per
request, users that send again as soon as they get an answer). Only one service is under load at a
time; the runs alternate between the two so that drift in the shared machine's load hits both alike.

1. 10 users, ``--repeats`` runs of ``--seconds`` each per service: requests/s, median/p95/p99, errors.
2. A user ladder per service: the highest user count whose p95 stays under 500 ms.
3. A soak of the proxy path at 80% of its highest measured throughput for ``--soak-seconds``: errors.

Locust's CSV statistics go to ``bench/results/load/``; the summary to ``bench/results/load.json`` (``--quick``:
``load-quick/`` and ``load-quick.json``, never committed).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tfxformers.testing import free_port, start_process, stop_process

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PY = sys.executable
LADDER = (1, 2, 5, 10, 15, 20, 30, 40, 60, 80)


def wait_until(check, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what}: process exited with {process.returncode}; see {process.log_path}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001  (not up yet)
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} not ready after {timeout} s; see {process.log_path}")


def start(command: list[str], name: str) -> subprocess.Popen:
    """A service under test, logging to a fresh /tmp/bench-load-NAME.log and dying with this script."""
    log_path = Path(tempfile.gettempdir()) / f"bench-load-{name}.log"
    log_path.unlink(missing_ok=True)
    return start_process(command, log_path)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read()


def classify_once(url: str, text: str) -> dict:
    request = urllib.request.Request(url + "/v1/models/sentiment:classify", method="POST",
                                     data=json.dumps({"texts": [text]}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def ensure_export(trained: Path, model_base: Path) -> None:
    if (model_base / "sentiment").is_dir() and any(p.name.isdigit() for p in (model_base / "sentiment").iterdir()):
        return
    subprocess.run([PY, "-m", "tfxformers", "export", "--model", str(trained), "--name", "sentiment",
                    "--model-base", str(model_base)], check=True, cwd=ROOT)


def load_texts(path: Path) -> list[str]:
    from tfxformers.models.data.classification import load_classification

    texts = load_classification("rotten_tomatoes").test.texts
    path.write_text(json.dumps(texts))
    return texts


def run_locust(url: str, users: int, seconds: int, prefix: Path, texts_file: Path, rate: float = 0.0) -> dict:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LOAD_TEXTS=str(texts_file), LOAD_RATE=str(rate))
    command = [str(Path(PY).with_name("locust")), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
               "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", url, "--csv", str(prefix),
               "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING"]
    subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=seconds + 120)
    with open(f"{prefix}_stats.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {"users": users, "seconds": seconds, "rate_per_user": rate, "requests": int(row["Request Count"]),
            "errors": int(row["Failure Count"]), "rps": float(row["Requests/s"]),
            "median_ms": float(row["50%"]), "p95_ms": float(row["95%"]), "p99_ms": float(row["99%"]),
            "csv": str(Path(f"{prefix}_stats.csv").relative_to(ROOT))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", default="runs/rt-frozen", help="a `tfxformers train classifier` output")
    parser.add_argument("--model-base", default="runs/load-models", help="where the export is (made if missing)")
    parser.add_argument("--seconds", type=int, default=30, help="length of each 10-user run")
    parser.add_argument("--repeats", type=int, default=3, help="10-user runs per service")
    parser.add_argument("--ladder-seconds", type=int, default=20, help="length of each ladder step")
    parser.add_argument("--soak-seconds", type=int, default=600, help="0 skips the soak")
    parser.add_argument("--batching", action="store_true", help="start the model server with server-side batching")
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test, not a measurement)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats, args.ladder_seconds, args.soak_seconds = 10, 1, 8, 30
    trained, model_base = ROOT / args.trained, ROOT / args.model_base
    if not (trained / "tfxformers.json").is_file():
        raise SystemExit(f"no trained classifier in {trained}; run: tfxformers train classifier --data rotten_tomatoes "
                         f"--mode frozen --output {args.trained}")
    ensure_export(trained, model_base)
    out_dir = RESULTS / ("load-quick" if args.quick else "load")  # a smoke run never overwrites a measurement
    texts_file = Path(tempfile.gettempdir()) / "tfxformers-load-texts.json"  # data: never in the repository
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = load_texts(texts_file)

    grpc_port, rest_port, proxy_port, baseline_port = free_port(), free_port(), free_port(), free_port()
    server_command = [PY, "-m", "tfxformers", "serve", "--model-base", str(model_base), "--host", "127.0.0.1",
                      "--grpc-port", str(grpc_port), "--rest-port", str(rest_port), "--log-level", "WARNING"]
    if args.batching:
        server_command += ["--enable-batching", "--batching-parameters-file", str(ROOT / "deploy" / "batching_parameters.txt")]
    processes = {}
    try:
        processes["server"] = start(server_command, "server")
        wait_until(lambda: b'"AVAILABLE"' in get(f"http://127.0.0.1:{rest_port}/v1/models/sentiment"), 300,
                   "model server", processes["server"])
        t0 = time.time()
        processes["proxy"] = start([PY, "-m", "tfxformers", "proxy", "--backend", f"grpc://127.0.0.1:{grpc_port}",
                                    "--port", str(proxy_port), "--log-level", "warning", "--models", "sentiment"], "proxy")
        wait_until(lambda: get(f"http://127.0.0.1:{proxy_port}/readyz"), 60, "proxy", processes["proxy"])
        proxy_start = time.time() - t0
        processes["baseline"] = start([PY, str(ROOT / "bench" / "baseline_app.py"), "--model", str(trained),
                                       "--port", str(baseline_port)], "baseline")
        wait_until(lambda: get(f"http://127.0.0.1:{baseline_port}/healthz"), 300, "baseline", processes["baseline"])
        graph_port = free_port()
        processes["baseline_graph"] = start([PY, str(ROOT / "bench" / "baseline_app.py"), "--model", str(trained),
                                             "--port", str(graph_port), "--graph"], "baseline-graph")
        wait_until(lambda: get(f"http://127.0.0.1:{graph_port}/healthz"), 300, "graph baseline", processes["baseline_graph"])
        urls = {"proxy": f"http://127.0.0.1:{proxy_port}", "baseline": f"http://127.0.0.1:{baseline_port}",
                "baseline_graph": f"http://127.0.0.1:{graph_port}"}

        # Same labels from both paths (the same model), and everything warmed up before measuring.
        agree = 0
        for text in texts[:50]:
            a, b, c = (classify_once(urls[s], text)["results"][0] for s in ("proxy", "baseline", "baseline_graph"))
            agree += (a["label"] == b["label"] == c["label"] and abs(a["probability"] - b["probability"]) < 1e-4
                      and abs(a["probability"] - c["probability"]) < 1e-4)
        print(f"proxy and baseline agree on {agree}/50 texts; proxy started in {proxy_start:.1f} s", flush=True)

        at10 = {"proxy": [], "baseline": [], "baseline_graph": []}
        for repeat in range(args.repeats):
            for service in at10:
                result = run_locust(urls[service], 10, args.seconds, out_dir / f"{service}_u10_r{repeat}", texts_file)
                at10[service].append(result)
                print(f"10 users, {service}, run {repeat}: {result}", flush=True)

        ladders = {}
        for service in ("proxy", "baseline"):
            steps = []
            for users in LADDER:
                result = run_locust(urls[service], users, args.ladder_seconds, out_dir / f"{service}_ladder_u{users}", texts_file)
                steps.append(result)
                print(f"ladder {service}: {result}", flush=True)
                if result["p95_ms"] >= 500 or result["errors"]:
                    break
            held = [s["users"] for s in steps if s["p95_ms"] < 500 and not s["errors"]]
            ladders[service] = {"steps": steps, "max_users_p95_under_500ms": max(held) if held else 0,
                                "max_rps": max(s["rps"] for s in steps)}

        soak = None
        if args.soak_seconds:
            target = 0.8 * ladders["proxy"]["max_rps"]
            users = 10
            soak = run_locust(urls["proxy"], users, args.soak_seconds, out_dir / "proxy_soak", texts_file,
                              rate=target / users)
            soak["target_rps"] = target
            print(f"soak: {soak}", flush=True)
        metrics = get(f"{urls['proxy']}/metrics").decode()
    finally:
        for process in processes.values():
            stop_process(process)

    def median(service, key):
        return statistics.median(r[key] for r in at10[service])

    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "model": str(args.trained), "server_batching": args.batching, "quick": args.quick,
        "proxy_startup_seconds": proxy_start,
        "at_10_users": {s: {"runs": at10[s], **{f"median_{k}": median(s, k) for k in ("rps", "median_ms", "p95_ms", "p99_ms")},
                            "errors": sum(r["errors"] for r in at10[s])} for s in at10},
        "rps_ratio_at_10_users": median("proxy", "rps") / median("baseline", "rps"),
        "rps_ratio_vs_graph_baseline_at_10_users": median("proxy", "rps") / median("baseline_graph", "rps"),
        "ladders": ladders, "soak": soak,
        "proxy_errors_metric": [line for line in metrics.splitlines() if line.startswith("tfxformers_proxy_errors_total")],
    }
    name = "load-quick.json" if args.quick else "load.json"
    (RESULTS / name).write_text(json.dumps(summary, indent=2))
    print("\n| service | RPS | median ms | p95 ms | p99 ms | errors | max users with p95 < 500 ms |\n|---|---|---|---|---|---|---|")
    for key, label in (("proxy", "proxy -> tfxformers serve (gRPC)"), ("baseline", "textbook in-process FastAPI (eager)"),
                       ("baseline_graph", "in-process FastAPI, tf.function + buckets")):
        s = summary["at_10_users"][key]
        held = ladders[key]["max_users_p95_under_500ms"] if key in ladders else "not run"
        print(f"| {label} | {s['median_rps']:.1f} | {s['median_median_ms']:.0f} | {s['median_p95_ms']:.0f} | "
              f"{s['median_p99_ms']:.0f} | {s['errors']} | {held} |")
    print(f"RPS ratio at 10 users: {summary['rps_ratio_at_10_users']:.2f}x; soak: {soak}")
    print(f"wrote {RESULTS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
