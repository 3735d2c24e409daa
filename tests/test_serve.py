"""`fraudtune serve` as a real server process on loopback: answers, 422 per record, 401, 503 under overload,
/healthz and /metrics. Every request goes to 127.0.0.1 only, with bounded counts and time limits."""

from __future__ import annotations

import asyncio
import copy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from spec_oracle import sample_txn

from fraudtune import paths

START_TIMEOUT_S = 600  # a loaded machine; the model loads in seconds when it is idle
TOKEN = "s3cret-token-for-tests"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(run: Path, tmp_path: Path, *args: str, token: str | None = None) -> Iterator[str]:
    """A `fraudtune serve` process on the run's adapter; yields its base URL once /healthz says ready."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("FRAUDTUNE_API_TOKEN", None)
    if token:
        env["FRAUDTUNE_API_TOKEN"] = token
    log = open(tmp_path / f"serve-{port}.log", "w")
    cmd = [sys.executable, "-m", "fraudtune.cli", "serve", "--adapter", str(run / paths.ADAPTER_DIR)]
    proc = subprocess.Popen([*cmd, "--port", str(port), "--precision", "fp32", *args], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited ({proc.returncode}): {(tmp_path / log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server not ready in time")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _txn(i: int, **changes) -> dict:
    txn = copy.deepcopy(sample_txn())
    txn["transaction_id"] = f"T-{i}"
    txn.update(changes)
    return txn


def test_scores_a_batch_and_names_the_bad_record(trained_tiny_run, tmp_path):
    with server(trained_tiny_run, tmp_path) as url:
        good = httpx.post(f"{url}/v1/score", json={"transactions": [_txn(1), _txn(2)]}, timeout=60)
        assert good.status_code == 200, good.text
        results = good.json()["results"]
        assert [r["transaction_id"] for r in results] == ["T-1", "T-2"]
        assert all(r["label"] in ("FRAUD", "LEGITIMATE") and 0 <= r["fraud_probability"] <= 1 for r in results)
        assert results[0]["reasoning"] is None  # scoring: no explanation

        mixed = httpx.post(f"{url}/v1/score", json={"transactions": [_txn(3), _txn(4, amount=-5)]}, timeout=60)
        assert mixed.status_code == 422
        body = mixed.json()
        assert body["errors"] == [
            {"index": 1, "transaction_id": "T-4", "field": "amount", "problem": "must be > 0, got -5"}
        ]
        assert [(r["index"], r["transaction_id"]) for r in body["results"]] == [(0, "T-3")]  # the good one scored

        explained = httpx.post(f"{url}/v1/explain", json=[_txn(5)], timeout=120)
        assert explained.status_code == 200 and "raw_text" in explained.json()["results"][0]

        assert httpx.post(f"{url}/v1/score", content=b"{not json", timeout=10).status_code == 400
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'fraudtune_requests_total{route="/v1/score",status="200"} 1.0' in metrics
        assert 'fraudtune_requests_total{route="/v1/score",status="422"} 1.0' in metrics
        assert "fraudtune_batch_size_bucket" in metrics and "fraudtune_queue_depth" in metrics


def readme_example() -> list[dict]:
    """The transactions of the README's curl example (the -d '...' body)."""
    import json
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    body = re.search(r"localhost:8000/v1/score -d '(.+?)'\n", text, re.DOTALL)
    assert body, "no curl example in the README"
    return json.loads(body.group(1))


def test_the_readme_example_is_a_valid_request(trained_tiny_run, tmp_path):
    from fraudtune.data.schema import validate_transaction

    example = readme_example()
    assert [validate_transaction(t) for t in example] == [[]]
    with server(trained_tiny_run, tmp_path, token=TOKEN) as url:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        response = httpx.post(f"{url}/v1/score", json=example, headers=headers, timeout=60)
        assert response.status_code == 200 and response.json()["results"][0]["transaction_id"] == "T-1"


def test_a_token_guards_every_route_but_healthz(trained_tiny_run, tmp_path):
    with server(trained_tiny_run, tmp_path, token=TOKEN) as url:
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        for route in ("/v1/score", "/v1/explain"):
            refused = httpx.post(f"{url}{route}", json=[_txn(1)], timeout=10)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        wrong = httpx.post(f"{url}/v1/score", json=[_txn(1)], headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
        ok = httpx.post(f"{url}/v1/score", json=[_txn(1)], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        assert ok.status_code == 200


def test_overload_gets_503_and_every_answer_is_whole(trained_tiny_run, tmp_path):
    """A queue of 2 transactions and 24 clients at once: some are told to come back (503, Retry-After), none
    crashes the server, and every answered request has exactly its own records."""
    with server(trained_tiny_run, tmp_path, "--max-queue", "2", "--max-batch", "2", "--max-wait-ms", "20") as url:

        async def one(client: httpx.AsyncClient, i: int) -> tuple[int, httpx.Response]:
            batch = [_txn(100 * i + k) for k in range(2)]
            return i, await client.post(f"{url}/v1/score", json=batch, timeout=60)

        async def burst() -> list[tuple[int, httpx.Response]]:
            async with httpx.AsyncClient() as client:
                return await asyncio.gather(*(one(client, i) for i in range(24)))

        answers = asyncio.run(burst())
        codes = sorted(r.status_code for _, r in answers)
        assert set(codes) <= {200, 503} and 503 in codes and 200 in codes, codes
        for i, response in answers:
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1"
            else:
                assert [r["transaction_id"] for r in response.json()["results"]] == [f"T-{100 * i}", f"T-{100 * i + 1}"]
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # still up


def test_limits_answer_413(trained_tiny_run, tmp_path):
    with server(trained_tiny_run, tmp_path, "--max-transactions", "3") as url:
        response = httpx.post(f"{url}/v1/score", json=[_txn(i) for i in range(4)], timeout=10)
        assert response.status_code == 413 and "limit 3 per request" in response.json()["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adapter", "/nonexistent"], "error: /nonexistent"),
        (["--adapter", ".", "--max-batch", "0"], "error: --max-batch 0: must be at least 1"),
    ],
)
def test_serve_refuses_bad_arguments_in_one_line(args, message, capsys):
    from fraudtune.cli import main

    assert main(["serve", *args]) == 1
    assert message in capsys.readouterr().err
