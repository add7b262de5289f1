"""Load test of ``polytask serve``: latency, throughput, and what one pass for all tasks saves.

Starts ``polytask serve`` on a free loopback port in a subprocess, then runs N concurrent
clients (httpx AsyncClient), each looping requests of a few inputs, for D seconds. Prints
errors, p50/p99 latency and throughput.

Then the one-pass ratio, measured side by side in alternating blocks (machine load affects both
alike): inputs/s when every request asks for all T tasks, against inputs/s when every request
asks for ONE task. T separate single-task models are simulated by the same multi-task model
answering one task per request (same encoder, one head): an approximation that is faithful
when the encoder dominates the cost, as it does (heads are one linear layer). Answering all
T tasks with T single-task models costs T single-task predictions per input, so

    ratio = T * (all-task inputs/s) / (single-task inputs/s)      target: >= 0.9 * T

    python benchmarks/serve_load.py --demo --clients 50 --seconds 60
    python benchmarks/serve_load.py --model-dir runs/demo/model --clients 10 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx
import numpy as np

LOOPBACK = "127.0.0.1"
MAX_SECONDS = 600


def demo_texts() -> list[str]:
    folder = resources.files("polytask") / "data" / "demo"
    texts = []
    for name in ("nlu_dev.jsonl", "domain_dev.jsonl"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts.append(row.get("text") or " ".join(row["tokens"]))
    return texts


def build_demo_model(folder: Path) -> Path:
    """The packaged demo config (embedded MiniLM, intent + slots + domain), 30 steps."""
    from polytask.api import demo_config_path, train

    train(demo_config_path(), [f"train.output_dir={folder}", "train.max_steps=30",
                               "train.eval_every=30", "train.progress=false"])
    return folder / "model"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def start_server(model_dir: Path, port: int, threads: int | None, onnx: bool) -> subprocess.Popen:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    command = [sys.executable, "-m", "polytask", "serve", str(model_dir), "--host", LOOPBACK,
               "--port", str(port), *(["--onnx"] if onnx else [])]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 300) -> list[str]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}:\n{server.stderr.read()}")
        try:
            return [t["name"] for t in httpx.get(f"{url}/metadata", timeout=2).json()["tasks"]]
        except httpx.TransportError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {timeout:.0f} s")


async def client_loop(http: httpx.AsyncClient, url: str, texts: list[str], per_request: int,
                      tasks: list[list[str] | None], until: float, seed: int, log: dict) -> None:
    rng = random.Random(seed)
    turn = seed
    while time.perf_counter() < until:
        body = {"inputs": rng.sample(texts, per_request)}
        if (wanted := tasks[turn % len(tasks)]) is not None:
            body["tasks"] = wanted
        turn += 1
        start = time.perf_counter()
        try:
            response = await http.post(f"{url}/predict", json=body)
            status = response.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        if status == 200:
            log["latencies"].append(time.perf_counter() - start)
            log["inputs"] += per_request
        else:
            log["errors"][str(status)] = log["errors"].get(str(status), 0) + 1


async def load(url: str, clients: int, seconds: float, per_request: int, texts: list[str],
               tasks: list[list[str] | None]) -> dict:
    log: dict = {"latencies": [], "inputs": 0, "errors": {}}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        start = time.perf_counter()
        until = start + seconds
        await asyncio.gather(*(client_loop(http, url, texts, per_request, tasks, until, i, log)
                               for i in range(clients)))
        log["elapsed"] = time.perf_counter() - start
    return log


def summary(log: dict) -> dict:
    latencies = np.asarray(log["latencies"]) * 1000
    return {"requests": len(latencies), "errors": log["errors"],
            "p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
            "p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
            "requests_per_s": round(len(latencies) / log["elapsed"], 1),
            "inputs_per_s": round(log["inputs"] / log["elapsed"], 1)}


def one_pass_ratio(url: str, args: argparse.Namespace, texts: list[str], names: list[str]) -> dict:
    """Alternating blocks of all-task and single-task load; inputs/s summed per mode."""
    block = max(2.0, args.seconds / (2 * args.ratio_blocks))
    totals = {"all": [0, 0.0], "single": [0, 0.0]}
    for _ in range(args.ratio_blocks):
        for mode, tasks in (("all", [None]), ("single", [[n] for n in names])):
            log = asyncio.run(load(url, args.clients, block, args.inputs, texts, tasks))
            totals[mode][0] += log["inputs"]
            totals[mode][1] += log["elapsed"]
    rate = {mode: inputs / elapsed for mode, (inputs, elapsed) in totals.items()}
    ratio = len(names) * rate["all"] / rate["single"]
    return {"tasks": len(names), "all_tasks_inputs_per_s": round(rate["all"], 1),
            "single_task_inputs_per_s": round(rate["single"], 1), "ratio": round(ratio, 2),
            "target": round(0.9 * len(names), 2), "meets_target": ratio >= 0.9 * len(names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="a saved model (or ONNX export with --onnx)")
    source.add_argument("--demo", action="store_true", help="train the packaged demo for 30 steps first")
    parser.add_argument("--onnx", action="store_true", help="serve an ONNX export")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--inputs", type=int, default=4, help="inputs per request")
    parser.add_argument("--ratio-blocks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the server")
    args = parser.parse_args()
    args.seconds = min(args.seconds, MAX_SECONDS)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_demo_model(Path(tmp) / "demo") if args.demo else args.model_dir
        port = free_port()
        url = f"http://{LOOPBACK}:{port}"
        server = start_server(model_dir, port, args.threads, args.onnx)
        try:
            names = wait_ready(url, server)
            texts = demo_texts()
            asyncio.run(load(url, min(args.clients, 4), 2, args.inputs, texts, [None]))  # warm-up
            report = {"clients": args.clients, "seconds": args.seconds, "inputs_per_request": args.inputs,
                      "load": summary(asyncio.run(load(url, args.clients, args.seconds, args.inputs,
                                                       texts, [None]))),
                      "one_pass": one_pass_ratio(url, args, texts, names)}
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
