"""Load test of `fraudtune serve`: a real server process on loopback, async HTTP clients at 1, 8 and 32 at once.

Usage: python bench/load.py ADAPTER_DIR TRANSACTIONS_JSONL [REQUESTS_PER_LEVEL]
Prints one JSON object: per concurrency level transactions/s, p50/p99 latency, error count; the server's peak RSS;
and an overload run (a small queue, many clients) that must show 503s, no crash and no lost or duplicated answer.
Traffic goes to 127.0.0.1 only, with a bounded number of requests and a time limit; the server is stopped after.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

LEVELS = (1, 8, 32)
TIME_LIMIT_S = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(adapter: str, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "fraudtune.cli", "serve", "--adapter", adapter, "--port", str(port), *args]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    env.pop("FRAUDTUNE_API_TOKEN", None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready within 300 s")


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


async def level(url: str, transactions: list[dict], clients: int, requests: int) -> dict:
    """`requests` single-transaction requests spread over `clients` concurrent clients."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    answered: list[str] = []
    todo = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        for i in todo:
            txn = {**transactions[i % len(transactions)], "transaction_id": f"L{clients}-{i}"}
            began = time.perf_counter()
            response = await http.post(f"{url}/v1/score", json=[txn], timeout=120)
            latencies.append(time.perf_counter() - began)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            if response.status_code == 200:
                answered.extend(r["transaction_id"] for r in response.json()["results"])

    began = time.perf_counter()
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.wait_for(asyncio.gather(*(client(http) for _ in range(clients))), TIME_LIMIT_S)
    seconds = time.perf_counter() - began
    latencies.sort()
    return {
        "clients": clients,
        "requests": requests,
        "seconds": seconds,
        "transactions_per_second": len(answered) / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": sum(n for code, n in codes.items() if code != 200),
        "lost": codes.get(200, 0) - len(set(answered)),  # a 200 whose record is missing
        "duplicated": len(answered) - len(set(answered)),
    }


async def overload(url: str, transactions: list[dict], clients: int = 64) -> dict:
    """Every client sends one 4-transaction request at once into a queue of 8: 503s, and whole answers."""

    async def one(http: httpx.AsyncClient, i: int) -> tuple[int, httpx.Response]:
        batch = [{**transactions[(4 * i + k) % len(transactions)], "transaction_id": f"O-{i}-{k}"} for k in range(4)]
        return i, await http.post(f"{url}/v1/score", json=batch, timeout=120)

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients)) as http:
        answers = await asyncio.wait_for(asyncio.gather(*(one(http, i) for i in range(clients))), TIME_LIMIT_S)
    codes: dict[int, int] = {}
    whole = True
    for i, response in answers:
        codes[response.status_code] = codes.get(response.status_code, 0) + 1
        if response.status_code == 200:
            ids = [r["transaction_id"] for r in response.json()["results"]]
            whole &= ids == [f"O-{i}-{k}" for k in range(4)]
    return {"clients": clients, "codes": {str(k): v for k, v in sorted(codes.items())}, "answers_whole": whole}


def main(adapter: str, transactions_file: str, requests: int = 128) -> dict:
    transactions = [json.loads(line) for line in Path(transactions_file).read_text().splitlines() if line.strip()]
    transactions = [t.get("transaction", t) for t in transactions]  # a .meta.jsonl holds them under "transaction"
    proc, url = start(adapter, "--precision", "auto")
    try:
        levels = [asyncio.run(level(url, transactions, c, requests)) for c in LEVELS]
        rss = peak_rss_mb(proc.pid)
    finally:
        stop(proc)
    proc, url = start(adapter, "--precision", "auto", "--max-queue", "8", "--max-batch", "8")
    try:
        over = asyncio.run(overload(url, transactions))
        alive = httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        stop(proc)
    return {"levels": levels, "server_peak_rss_mb": rss, "overload": {**over, "alive_after": alive}}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], *(int(x) for x in sys.argv[3:4]))))
