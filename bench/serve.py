"""Serving benchmark: `intentflow serve` against a plain FastAPI endpoint that calls a
transformers `pipeline` once per request, in the same run, on the same registered model.

    python bench/serve.py --home DIR --model banking77            # both parts
    python bench/serve.py --home DIR --model banking77 --part runtime

Needs a registry holding an intent model trained on Banking77 (MiniLM-L6 by default, with its
ONNX form: trained by this version of `intentflow train`); `--train` trains one when the
registry has none (2 epochs, about 8 minutes on 2 cores), as

    INTENTFLOW_HOME=DIR intentflow train --data ../shared/datasets/banking77/train.csv \\
        --task intent --model banking77 --epochs 2

Parts:
- `runtime`: the champion's artifact loaded as `intentflow serve` loads it, on torch, on
  torch with dynamic int8 quantisation (the other candidate) and on the ONNX Runtime int8 form
  its artifact carries (ml.artifact.optimised): accuracy on the version's own test split (the
  snapshot its lineage names), milliseconds per call of 1 and of 32 texts (in the service's
  length-sorted chunks), and each int8 form's accuracy change (the bar: at most 0.5 point).
- `load`: `--clients` concurrent clients (64) replaying Banking77 texts, one text per request,
  for `--seconds` each, against (a) `intentflow serve` (one worker, its default runtime,
  micro-batching, the prediction log on) and (b) the baseline app (uvicorn, a sync FastAPI
  endpoint, `pipeline("text-classification")` per request, torch's default threads), one after
  the other; then one client alone against each (single-request latency). Reports requests/s,
  p50/p95/p99 milliseconds, failed requests and each server's memory (RSS and PSS of its
  process) after the run. The load generator (aiohttp) runs on the same machine: on 2 cores
  it takes CPU from both servers alike.

Data: ../shared/datasets/banking77 (PolyAI, CC BY 4.0).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("INTENTFLOW_SHARED", REPO.parent / "shared")) / "datasets"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

TOKEN = "bench-token-" + "0" * 24


def banking77_texts() -> list[str]:
    with (SHARED / "banking77" / "train.csv").open(newline="", encoding="utf-8") as fh:
        return [row["text"].strip() for row in csv.DictReader(fh) if row["text"].strip()]


def champion(model: str) -> Any:
    from ml.registry.store import Registry

    return Registry().resolve(f"{model}@champion")


def train_if_missing(model: str) -> None:
    from ml.registry.errors import NotFoundError

    try:
        champion(model)
        return
    except NotFoundError:
        pass
    data = SHARED / "banking77" / "train.csv"
    command = [sys.executable, "-m", "ml.cli", "train", "--data", str(data), "--task", "intent"]
    subprocess.run([*command, "--model", model, "--epochs", "2"], check=True)


# --- part: runtime ----------------------------------------------------------------------------


def runtime_part(model: str, threads: int, rounds: int = 5) -> list[dict[str, Any]]:
    """Accuracy of each runtime on the test split, then its time per call, measured in
    interleaved rounds (every runtime once a round), so that a neighbour's load falls on all
    of them alike; CPU time (this process's) beside wall time."""
    import pyarrow.parquet as pq

    from ml.config import settings
    from ml.serving.models import load_served
    from ml.serving.runtime import set_threads

    set_threads(threads)
    version = champion(model)
    test = pq.read_table(Path(version.lineage["snapshot_path"]) / "test.parquet").to_pydict()
    texts, gold = test["text"], test["intent"]
    runtimes = {}
    # Each candidate, and the service's runtime it starts from.
    for runtime, base in (("torch", "torch"), ("torch-int8", "torch"), ("onnx-int8", "onnx-int8")):
        served = load_served(version, settings(), base, threads)
        runtimes[runtime] = _torch_dynamic_int8(served) if runtime == "torch-int8" else served
        if served.runtime != base:
            raise RuntimeError(f"{model}:{version.version} has no {base} form: retrain it")
    # The service's batches run in length-sorted chunks (ml.serving.models.CPU_CHUNK); this one
    # takes each call whole, padded to its longest text.
    runtimes["onnx-int8, unchunked"] = dataclasses.replace(runtimes["onnx-int8"], chunk=None)
    rows = {}
    for runtime, served in runtimes.items():
        if runtime.endswith("unchunked"):
            rows[runtime] = {"runtime": runtime, "accuracy": float("nan"), 1: [], 32: []}
            continue
        predicted = []
        for start in range(0, len(texts), 32):
            predicted += [p["intent"] for p in served.predict(texts[start : start + 32], 1)]
        accuracy = float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))
        rows[runtime] = {"runtime": runtime, "accuracy": accuracy, 1: [], 32: []}
    for r in range(rounds):
        for runtime, served in runtimes.items():
            for size, calls in ((1, 40), (32, 4)):
                rows[runtime][size].append(_ms_per_call(served, texts, size, calls, r))
    print(
        f"\nruntime: {model}:{version.version} on its test split ({len(texts)} texts), "
        f"{threads} thread(s), {rounds} interleaved rounds; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'runtime':<22}{'accuracy':>9}{'1 text: wall ms':>17}{'CPU ms':>8}"
        f"{'32 texts: wall ms':>19}{'CPU ms':>8}"
    )
    out = []
    for row in rows.values():
        (w1, c1), (w32, c32) = (np.median(np.array(row[k]), axis=0) for k in (1, 32))
        out.append({**row, "wall_1": w1, "cpu_1": c1, "wall_32": w32, "cpu_32": c32})
        print(
            f"{row['runtime']:<22}{row['accuracy']:>9.4f}{w1:>17.2f}{c1:>8.2f}"
            f"{w32:>19.2f}{c32:>8.2f}"
        )
    base = out[0]
    for row in out[1:3]:
        print(
            f"{row['runtime']} vs torch: accuracy "
            f"{100 * (row['accuracy'] - base['accuracy']):+.2f} points; CPU per call "
            f"{base['cpu_1'] / row['cpu_1']:.2f}x less at 1 text, "
            f"{base['cpu_32'] / row['cpu_32']:.2f}x less at 32"
        )
    whole, chunked = out[3], out[2]
    print(
        f"onnx-int8, 32 texts in one call vs in chunks of {runtimes['onnx-int8'].chunk}: "
        f"{whole['cpu_32'] / chunked['cpu_32']:.2f}x the CPU"
    )
    return out


def _ms_per_call(
    served: Any, texts: list[str], size: int, calls: int, offset: int
) -> tuple[float, float]:
    """Median wall and mean CPU milliseconds of `calls` calls of `size` texts."""
    served.predict(texts[:size], 1)
    timings = []
    cpu = sum(os.times()[:2])
    for i in range(calls):
        start = (offset * calls + i) * size % max(len(texts) - size, 1)
        tick = time.perf_counter()
        served.predict(texts[start : start + size], 1)
        timings.append((time.perf_counter() - tick) * 1000)
    return float(np.median(timings)), (sum(os.times()[:2]) - cpu) * 1000 / calls


def _torch_dynamic_int8(served: Any) -> Any:
    """The other candidate for the optimised path: torch's dynamic int8 quantisation of the
    Linear layers (deprecated in torch 2.13's torch.ao.quantization)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        served.loaded.model = torch.ao.quantization.quantize_dynamic(
            served.loaded.model, {torch.nn.Linear}, dtype=torch.qint8
        )
    return served


# --- part: load ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[:4]} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{argv[:4]} did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def memory_mb(pid: int) -> tuple[float, float]:
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return info.rss / 2**20, info.pss / 2**20


async def _load(
    url: str, payload: Any, texts: list[str], clients: int, seconds: float, headers: dict
) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    failed = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def client(k: int) -> None:
            nonlocal failed
            i = k
            while time.perf_counter() < stop_at:
                body = payload(texts[i % len(texts)])
                i += clients
                tick = time.perf_counter()
                try:
                    async with session.post(url, json=body) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - tick) * 1000)
                else:
                    failed += 1

        tick = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        wall = time.perf_counter() - tick
    ms = np.array(latencies or [float("nan")])
    return {
        "rps": len(latencies) / wall,
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "ok": len(latencies),
        "failed": failed,
    }


def load_part(model: str, clients: int, seconds: float, warmup: float) -> None:
    texts = banking77_texts()
    version = champion(model)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results = {}
    port = free_port()
    ours = start(
        [sys.executable, "-m", "ml.cli", "serve", "--port", str(port)],
        {**env, "INTENTFLOW_SERVE_TOKENS": TOKEN, "INTENTFLOW_SERVE_MODELS": model},
        port,
    )
    results["intentflow serve"] = _measure(
        ours,
        f"http://127.0.0.1:{port}/v1/models/{model}/predict",
        {"Authorization": f"Bearer {TOKEN}"},
        texts,
        clients,
        seconds,
        warmup,
    )
    port = free_port()
    baseline = start(
        [
            sys.executable,
            str(Path(__file__)),
            "--baseline-app",
            version.artifact_uri,
            "--port",
            str(port),
        ],
        env,
        port,
    )
    results["pipeline per request"] = _measure(
        baseline, f"http://127.0.0.1:{port}/predict", {}, texts, clients, seconds, warmup
    )
    print(
        f"\nload: {clients} clients, {seconds:.0f} s each, one Banking77 text per request; "
        f"{model}:{version.version}; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'server':<22}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'failed':>8}"
        f"{'CPU ms/req':>11}{'alone p50':>11}{'RSS MiB':>9}{'PSS MiB':>9}"
    )
    for name, r in results.items():
        c, a = r["concurrent"], r["alone"]
        print(
            f"{name:<22}{c['rps']:>8.1f}{c['p50']:>9.1f}{c['p95']:>9.1f}{c['p99']:>9.1f}"
            f"{c['failed']:>8}{c['cpu_ms']:>11.2f}{a['p50']:>11.1f}{r['rss']:>9.0f}{r['pss']:>9.0f}"
        )
    ours_c, base_c = (
        results["intentflow serve"]["concurrent"],
        results["pipeline per request"]["concurrent"],
    )
    print(
        f"intentflow serve / baseline: {ours_c['rps'] / base_c['rps']:.2f}x requests/s, "
        f"p99 {ours_c['p99'] / base_c['p99']:.2f}x"
    )


def _measure(
    proc: subprocess.Popen[bytes],
    url: str,
    headers: dict,
    texts: list[str],
    clients: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    def payload(text: str) -> dict:
        return {"texts": [text]}

    import psutil

    server = psutil.Process(proc.pid)
    try:
        asyncio.run(_load(url, payload, texts, clients, warmup, headers))
        cpu = sum(server.cpu_times()[:2])
        concurrent = asyncio.run(_load(url, payload, texts, clients, seconds, headers))
        # CPU seconds the server spent per request: the fair figure on a shared machine.
        concurrent["cpu_ms"] = (sum(server.cpu_times()[:2]) - cpu) * 1000 / max(concurrent["ok"], 1)
        alone = asyncio.run(_load(url, payload, texts[1000:], 1, min(seconds, 10), headers))
        rss, pss = memory_mb(proc.pid)
    finally:
        stop(proc)
    return {"concurrent": concurrent, "alone": alone, "rss": rss, "pss": pss}


# --- the baseline app -------------------------------------------------------------------------


def baseline_app(artifact: str, port: int) -> None:
    """What a plain deployment looks like: a transformers pipeline, called once per request
    from a sync FastAPI endpoint (FastAPI runs it on its thread pool)."""
    import uvicorn
    from fastapi import FastAPI
    from transformers import pipeline

    classify = pipeline("text-classification", model=artifact, tokenizer=artifact, device=-1)
    app = FastAPI()

    @app.get("/ready")
    def ready() -> dict:
        return {"status": "ready"}

    @app.post("/predict")
    def predict(body: dict) -> dict:
        return {"predictions": classify(body["texts"], top_k=5)}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="INTENTFLOW_HOME holding the registry (default: the env)")
    parser.add_argument("--model", default="banking77", help="registered intent model")
    parser.add_argument("--part", action="append", choices=("runtime", "load"))
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="runtime part: CPU threads")
    parser.add_argument("--train", action="store_true", help="train the model if missing")
    parser.add_argument("--baseline-app", metavar="ARTIFACT", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_app:
        baseline_app(args.baseline_app, args.port)
        return
    if args.home:
        os.environ["INTENTFLOW_HOME"] = args.home
    from ml.threads import available_cpus

    print(json.dumps({"uptime_load": os.getloadavg(), "cpus": available_cpus()}))
    if args.train:
        train_if_missing(args.model)
    parts = args.part or ["runtime", "load"]
    if "runtime" in parts:
        runtime_part(args.model, args.threads or available_cpus())
    if "load" in parts:
        load_part(args.model, args.clients, args.seconds, args.warmup)


if __name__ == "__main__":
    main()
