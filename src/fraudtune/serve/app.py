"""`fraudtune serve`: the adapter behind HTTP (FastAPI), micro-batched, bounded, observable.

Routes: POST /v1/score (a batch of SPEC transactions -> SPEC records without explanation), POST /v1/explain (the
same with red flags and reasoning generated), GET /healthz (200 once the model is loaded, 503 before), GET /metrics
(Prometheus text). Every record is validated against SPEC 1: a bad one is named (index, transaction id, field)
in a 422 answer that still carries the records of the good ones. With FRAUDTUNE_API_TOKEN set, every route but
/healthz wants `Authorization: Bearer <token>`.

The model loads once per worker process, in the background, so /healthz can answer while it loads.
"""

import asyncio
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudtune.serve.batcher import MicroBatcher, QueueFull

log = logging.getLogger(__name__)

TOKEN_ENV = "FRAUDTUNE_API_TOKEN"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class ServeSettings:
    """What a worker needs to start; read from FRAUDTUNE_SERVE_* variables so uvicorn's workers get it too."""

    adapter: Path
    precision: str = "auto"
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_transactions: int = 256  # per request
    max_body_bytes: int = 2_000_000
    timeout_s: float = 30.0
    explain_max_batch: int = 8

    ENV_PREFIX = "FRAUDTUNE_SERVE_"

    def to_env(self) -> dict[str, str]:
        return {f"{self.ENV_PREFIX}{k.upper()}": str(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_env(cls) -> "ServeSettings":
        values: dict[str, Any] = {}
        kinds = {"adapter": Path, "precision": str}
        for name, default in cls.__dataclass_fields__.items():
            kind = kinds.get(name) or type(default.default)
            raw = os.environ.get(f"{cls.ENV_PREFIX}{name.upper()}")
            if raw is None or name == "ENV_PREFIX":
                continue
            values[name] = kind(raw)
        if "adapter" not in values:
            raise RuntimeError(f"{cls.ENV_PREFIX}ADAPTER is not set: start the service with `fraudtune serve`")
        return cls(**values)


class Metrics:
    """Prometheus series of one worker: requests by route and status, latency, batch sizes, queue depth."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fraudtune_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "fraudtune_request_seconds", "Request latency", ["route"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.transactions = Counter(
            "fraudtune_transactions", "Transactions answered", ["route"], registry=self.registry
        )
        self.batch = Histogram(
            "fraudtune_batch_size", "Transactions per model call", ["kind"], buckets=BATCH_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.queue = Gauge("fraudtune_queue_depth", "Transactions queued or running", ["kind"], registry=self.registry)
        self.ready = Gauge("fraudtune_model_ready", "1 once the model is loaded", registry=self.registry)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class Service:
    """The loaded predictor and its two batchers (score, explain) for one worker."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.predictor: Any = None
        self.load_error: str | None = None
        self.score_batcher: MicroBatcher | None = None
        self.explain_batcher: MicroBatcher | None = None
        self._loaded = threading.Event()

    def load(self) -> None:
        """Load the model (in a thread: the server answers /healthz meanwhile)."""
        from fraudtune.predict import load

        try:
            began = time.perf_counter()
            self.predictor = load(self.settings.adapter, precision=self.settings.precision)
            log.info("model loaded from %s in %.1f s", self.settings.adapter, time.perf_counter() - began)
            self.metrics.ready.set(1)
        except Exception as exc:  # the service stays up and says why it is not ready
            self.load_error = " ".join(str(exc).split())
            log.error("model failed to load: %s", self.load_error)
        finally:
            self._loaded.set()

    @property
    def ready(self) -> bool:
        return self.predictor is not None

    def start_batchers(self) -> None:
        s = self.settings
        self.score_batcher = self._batcher("score", self._score, s.max_batch)
        self.explain_batcher = self._batcher("explain", self._explain, s.explain_max_batch)

    def _batcher(self, kind: str, run: Any, max_batch: int) -> MicroBatcher:
        s, sizes = self.settings, self.metrics.batch.labels(kind)
        batcher = MicroBatcher(run, max_batch, s.max_wait_ms, s.max_queue, sizes.observe)
        batcher.start()
        return batcher

    def _score(self, transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.predictor.predict(transactions, explain=False, batch_size=max(1, len(transactions)))

    def _explain(self, transactions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.predictor.predict(transactions, explain=True, batch_size=max(1, len(transactions)))


def check_records(items: list[Any]) -> tuple[list[tuple[int, dict]], list[dict[str, Any]]]:
    """(index, normalised transaction) of every valid record, and one error per problem of the others."""
    from fraudtune.data.schema import normalize, validate_transaction

    valid, errors, seen = [], [], set()
    for index, item in enumerate(items):
        problems = validate_transaction(item)
        txn_id = item.get("transaction_id") if isinstance(item, dict) else None
        if not problems and txn_id in seen:
            problems = [("transaction_id", f"duplicate id {str(txn_id)[:40]!r} in this request")]
        if problems:
            errors += [
                {
                    "index": index,
                    "transaction_id": txn_id if isinstance(txn_id, str) else None,
                    "field": f,
                    "problem": p,
                }
                for f, p in problems
            ]
            continue
        seen.add(txn_id)
        valid.append((index, normalize(item)))
    return valid, errors


def create_app(settings: ServeSettings | None = None) -> Any:
    """The FastAPI app of one worker (uvicorn calls it with no argument: settings from the environment)."""
    import json as jsonlib
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    settings = settings or ServeSettings.from_env()
    if not logging.getLogger().handlers:  # a uvicorn worker: fraudtune's messages next to uvicorn's
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    service = Service(settings)
    token = os.environ.get(TOKEN_ENV) or None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=service.load, name="fraudtune-load", daemon=True).start()
        service.start_batchers()
        yield
        await service.score_batcher.stop()
        await service.explain_batcher.stop()

    app = FastAPI(title="fraudtune", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service

    def answer(route: str, status: int, body: Any, began: float, headers: dict | None = None) -> JSONResponse:
        service.metrics.requests.labels(route, str(status)).inc()
        service.metrics.latency.labels(route).observe(time.perf_counter() - began)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if token is not None and request.url.path != "/healthz":
            given = request.headers.get("authorization", "")
            if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())):
                service.metrics.requests.labels(request.url.path, "401").inc()
                return JSONResponse(
                    {"error": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    @app.get("/healthz")
    async def healthz():
        if service.ready:
            return {"status": "ready", "adapter": str(settings.adapter)}
        status = "failed" if service.load_error else "loading"
        return JSONResponse({"status": status, "error": service.load_error}, status_code=503)

    @app.get("/metrics")
    async def metrics():
        for kind, batcher in (("score", service.score_batcher), ("explain", service.explain_batcher)):
            service.metrics.queue.labels(kind).set(batcher.pending if batcher else 0)
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    async def handle(request: Request, route: str, batcher_of) -> JSONResponse:
        began = time.perf_counter()
        if not service.ready:
            return answer(route, 503, {"error": "model not loaded yet; see /healthz"}, began, {"Retry-After": "5"})
        size = int(request.headers.get("content-length") or 0)
        if size > settings.max_body_bytes:
            return answer(route, 413, {"error": f"body of {size} bytes, limit {settings.max_body_bytes}"}, began)
        raw = await request.body()
        if len(raw) > settings.max_body_bytes:
            return answer(route, 413, {"error": f"body of {len(raw)} bytes, limit {settings.max_body_bytes}"}, began)
        try:
            body = jsonlib.loads(raw)
        except ValueError as exc:
            return answer(route, 400, {"error": f"body is not JSON ({exc})"}, began)
        items = body.get("transactions") if isinstance(body, dict) else body
        if not isinstance(items, list):
            return answer(route, 400, {"error": 'expected {"transactions": [...]} or a JSON list'}, began)
        if len(items) > settings.max_transactions:
            limit = settings.max_transactions
            return answer(route, 413, {"error": f"{len(items)} transactions, limit {limit} per request"}, began)
        valid, errors = check_records(items)
        results: list[Any] = []
        if valid:
            try:
                records = await asyncio.wait_for(batcher_of().submit([t for _, t in valid]), settings.timeout_s)
            except QueueFull as exc:
                return answer(route, 503, {"error": f"busy: {exc}"}, began, {"Retry-After": "1"})
            except TimeoutError:
                return answer(route, 504, {"error": f"no answer within {settings.timeout_s:g} s"}, began)
            except Exception as exc:  # the model call failed: say so, keep serving
                log.exception("model call failed")
                return answer(route, 500, {"error": f"model call failed: {type(exc).__name__}"}, began)
            results = [{"index": i, **r} for (i, _), r in zip(valid, records, strict=True)]
            service.metrics.transactions.labels(route).inc(len(results))
        status = 422 if errors else 200
        return answer(route, status, {"results": results, "errors": errors}, began)

    @app.post("/v1/score")
    async def score(request: Request):
        return await handle(request, "/v1/score", lambda: service.score_batcher)

    @app.post("/v1/explain")
    async def explain(request: Request):
        return await handle(request, "/v1/explain", lambda: service.explain_batcher)

    return app


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the service with uvicorn (each worker process loads the model once)."""
    import uvicorn

    os.environ.update(settings.to_env())
    uvicorn.run(
        "fraudtune.serve.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
