"""The HTTP API of `synlearner serve` (FastAPI; the OpenAPI document is at /openapi.json).

    POST /v1/predict   {"task_id"?, "inputs": [...], "refine"?: K}  -> answers
    GET  /v1/tasks     learned tasks, their versions and latest accuracy
    GET  /v1/tasks/{id}
    GET  /healthz, /readyz, /metrics

Limits (`daemon.api`): the body's bytes (413), inputs per request and characters per input
(422, the error names the field and the limit), refine rounds (422), predictions waiting
for the model and how long (503 with Retry-After). A 422 never echoes the input. With
`token` set, /v1/* and /metrics answer 401 without `Authorization: Bearer <token>`; the
probes never ask for it. Each request's latency is a histogram by route and status, and the
requests in flight a gauge.

The server gives each connection `request_timeout_s` in all to send a request, however
slowly it trickles, and closes the oldest of those still sending one past `max_pending`:
clients that connect and send nothing hold nothing a probe or a request needs.
"""

import asyncio
import hmac
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from synlearner.daemon.config import ApiConfig
from synlearner.daemon.serving import Busy, NotServable, Predictor, Unavailable, UnknownTask

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
PROTECTED = ("/v1/", "/metrics")  # what asks for the token, when one is set (never the probes)
UNAUTHORIZED = {"description": "no `Authorization: Bearer <daemon.api.token>`, or a wrong one"}
BUSY = {"description": "the model is taken for longer than daemon.api.max_queue and "
        "queue_timeout_s allow (come back after Retry-After), or a committed adapter is missing",
        "headers": {"Retry-After": {"description": "seconds to wait before asking again",
                                    "schema": {"type": "integer"}}}}


def _printable(value: Any) -> Any:
    """`value` as JSON can write it: text with its lone surrogates (JSON can spell one,
    \\ud800, UTF-8 cannot encode it) escaped."""
    return value.encode("utf-8", "backslashreplace").decode() if isinstance(value, str) else value


async def _unprocessable(_request: Request, exc: Exception) -> Response:
    """422 naming each field and its limit. Unlike FastAPI's own, it never echoes the input,
    which JSON may not be able to write (NaN, a lone surrogate) and which may be large."""
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": [_printable(p) for p in e["loc"]], "msg": _printable(e["msg"]),
               "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


class Answer(BaseModel):
    task_id: str = Field(description="the task that answered (routed, when none was named)")
    adapter: str = Field(description="the adapter that answered: the task's, a later one "
                         "that took it over, or the consolidated one")
    version: int
    prediction: str = Field(description="the label (classification) or the text")
    scores: dict[str, float] | None = Field(None, description="classification: each label's "
                                            "probability")
    verifier_score: float | None = Field(None, description="refined: the best answer's score, 0-5")
    rounds: int | None = Field(None, description="refined: answers generated for the input")


class PredictResponse(BaseModel):
    answers: list[Answer]


class TaskView(BaseModel):
    task_id: str
    kind: str
    version: int
    learned_at: float
    adapter: str
    accuracy: float | None = Field(description="task-aware accuracy in the latest matrix row")
    zero_shot: float
    final: float
    init_from: str | None


class TaskDetail(TaskView):
    versions: list[int]
    labels: list[str]


class BearerToken:
    """Answers 401 to a request for a protected path that lacks `Authorization: Bearer
    <token>` (compared in constant time), before the route reads its body."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self._token = app, token.encode()

    def _authorized(self, scope: Scope) -> bool:
        value = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, given = value.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"].startswith(PROTECTED)
                and not self._authorized(scope)):
            denied = JSONResponse({"detail": "a bearer token is required (daemon.api.token)"},
                                  status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await denied(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Answers 413 to a body over `limit` bytes, declared or streamed, before it is parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = JSONResponse({"detail": f"request body over daemon.api.max_body_bytes "
                                  f"({self.limit} bytes)"}, status_code=413)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large(scope, receive, send)
            return
        seen, answered = 0, False

        async def counted() -> Message:  # over the limit: answer 413, tell the app we left
            nonlocal seen, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    answered = True
                    await too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not answered:
                await send(message)

        await self.app(scope, counted, guarded)


def create_app(predictor: Predictor, limits: ApiConfig, registry: CollectorRegistry | None = None,
               ready: Callable[[], bool] | None = None) -> FastAPI:
    """The API over `predictor`; `/metrics` shows `registry` (the API's own metrics are
    added to it), `/readyz` asks `ready` too (the daemon: model, memory and stream up)."""
    registry = registry or CollectorRegistry()
    latency = Histogram("synlearner_api_request_seconds", "API request latency", ["route", "status"],
                        buckets=LATENCY_BUCKETS, registry=registry)
    in_flight = Gauge("synlearner_api_requests_in_flight", "API requests being answered",
                      registry=registry)
    answered = Counter("synlearner_api_inputs_total", "inputs answered by /v1/predict", ["kind"],
                       registry=registry)
    Input = Annotated[str, StringConstraints(min_length=1, max_length=limits.max_input_chars)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        task_id: str | None = Field(None, max_length=256, description="the task to answer as; "
                                    "none: each input is routed to its nearest learned task")
        inputs: list[Input] = Field(min_length=1, max_length=limits.max_inputs)
        refine: int = Field(0, ge=0, le=limits.max_refine, description="generation: rounds of "
                            "answer, verifier score, improve")
        threshold: float = Field(4.5, ge=0, le=5, allow_inf_nan=False,
                                 description="refine: stop at this score")

    app = FastAPI(title="synlearner", version="1",
                  description="Answers from the adapters the synlearner daemon has committed.")
    app.add_exception_handler(RequestValidationError, _unprocessable)
    # with a token, BearerToken (inside the measuring middleware) refuses requests without
    # it; the Security dependency only puts the scheme into the OpenAPI document
    auth: list[Any] = []
    denied: dict[int | str, Any] = {}
    if limits.token is not None:
        app.add_middleware(BearerToken, token=limits.token.get_secret_value())
        auth, denied = [Security(HTTPBearer(auto_error=False))], {401: UNAUTHORIZED}

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        in_flight.inc()
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            latency.labels(path, str(status)).observe(time.perf_counter() - t0)
            in_flight.dec()

    @app.post("/v1/predict", response_model=PredictResponse, dependencies=auth,
              responses={**denied, 404: {"description": "unknown task"},
                         400: {"description": "not servable"}, 503: BUSY,
                         413: {"description": "the body is over daemon.api.max_body_bytes"}})
    async def predict(body: PredictRequest) -> PredictResponse:
        try:
            answers = await run_in_threadpool(predictor.predict, body.task_id, body.inputs,
                                              body.refine, body.threshold)
        except UnknownTask as exc:
            raise HTTPException(404, str(exc)) from exc
        except NotServable as exc:
            raise HTTPException(400, str(exc)) from exc
        except Busy as exc:
            raise HTTPException(503, str(exc), {"Retry-After": str(exc.retry_after_s)}) from exc
        except Unavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        answered.labels("scores" if answers and answers[0].scores else "text").inc(len(answers))
        return PredictResponse(answers=[Answer(**vars(a)) for a in answers])

    @app.get("/v1/tasks", response_model=list[TaskView], dependencies=auth, responses=denied)
    async def tasks() -> list[dict[str, Any]]:
        return await run_in_threadpool(predictor.tasks)

    @app.get("/v1/tasks/{task_id}", response_model=TaskDetail,
             dependencies=auth, responses={**denied, 404: {"description": "unknown task"}})
    async def task(task_id: str) -> dict[str, Any]:
        try:
            return await run_in_threadpool(predictor.task, task_id)
        except UnknownTask as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "no state to serve yet, or the daemon "
                                          "is starting or stopping"}})
    async def readyz() -> JSONResponse:
        up = predictor.ready() and (ready is None or ready())
        return JSONResponse({"ready": up}, status_code=200 if up else 503)

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=auth,
             responses={**denied, 200: {"description": "Prometheus text format"}})
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    return app


def request_deadline(timeout_s: float, max_pending: int) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, where a connection has `timeout_s` in all to send each request
    (head and body, however slowly it trickles; uvicorn's keep-alive timeout only starts
    after a response), and at most `max_pending` connections are sending one at once (past
    that, the one that has waited longest is closed). One set of pending connections per
    server: call it once per server."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    pending: dict[H11Protocol, asyncio.TimerHandle] = {}  # oldest first

    class RequestDeadline(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
            super().connection_made(transport)
            self._track()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._track()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._track()

        def connection_lost(self, exc: Exception | None) -> None:
            self._received()
            super().connection_lost(exc)

        def _track(self) -> None:
            """A deadline from the moment the connection may send a request until the
            request is all in."""
            sending = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
            if not sending or self.transport.is_closing():
                self._received()
            elif self not in pending:
                if len(pending) >= max_pending:
                    oldest = next(iter(pending))
                    assert isinstance(oldest, RequestDeadline)
                    oldest._expire()
                pending[self] = self.loop.call_later(timeout_s, self._expire)

        def _received(self) -> None:
            timer = pending.pop(self, None)
            if timer is not None:
                timer.cancel()

        def _expire(self) -> None:
            self._received()
            self.transport.close()

    return RequestDeadline


class ApiServer:
    """The API served by uvicorn: on a thread of the training daemon (`start`, `stop`) or in
    the foreground (`run`, `synlearner serve`). Its socket is bound here, so a port in use
    is an error to log, not the end of the daemon's learning."""

    def __init__(self, app: FastAPI, limits: ApiConfig, log_level: str = "warning") -> None:
        import uvicorn

        host = limits.host
        self._sock = socket.create_server((host, limits.port), family=socket.AF_INET6 if ":" in host
                                          else socket.AF_INET, backlog=128)
        self.port = int(self._sock.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(
            app, log_level=log_level, log_config=None, access_log=False, timeout_keep_alive=5,
            http=request_deadline(limits.request_timeout_s, limits.max_pending)))
        # log_config None: the daemon's logging stays as it is. No limit_concurrency: it
        # counts idle connections too, and answers everything 503 while they stay open
        self._thread = threading.Thread(target=self.run, name="api", daemon=True)

    def run(self) -> None:
        """Serve until stopped (on the main thread: until SIGINT or SIGTERM)."""
        self._server.run(sockets=[self._sock])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
