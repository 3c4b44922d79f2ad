"""The HTTP API of `synlearner serve` (FastAPI; the OpenAPI document is at /openapi.json).

    POST /v1/predict   {"task_id"?, "inputs": [...], "refine"?: K}  -> answers
    GET  /v1/tasks     learned tasks, their versions and latest accuracy
    GET  /v1/tasks/{id}
    GET  /healthz, /readyz, /metrics

Limits (`daemon.api`): the body's bytes (413), inputs per request and characters per input
(422, the error names the field and the limit), refine rounds (422). Each request's latency
is a histogram by route and status, and the requests in flight a gauge.
"""

import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
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
from synlearner.daemon.serving import NotServable, Predictor, Unavailable, UnknownTask

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


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
        threshold: float = Field(4.5, ge=0, le=5, description="refine: stop at this score")

    app = FastAPI(title="synlearner", version="1",
                  description="Answers from the adapters the synlearner daemon has committed.")

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

    @app.post("/v1/predict", response_model=PredictResponse,
              responses={404: {"description": "unknown task"}, 400: {"description": "not servable"},
                         503: {"description": "a committed adapter is missing"}})
    async def predict(body: PredictRequest) -> PredictResponse:
        try:
            answers = await run_in_threadpool(predictor.predict, body.task_id, body.inputs,
                                              body.refine, body.threshold)
        except UnknownTask as exc:
            raise HTTPException(404, str(exc)) from exc
        except NotServable as exc:
            raise HTTPException(400, str(exc)) from exc
        except Unavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        answered.labels("scores" if answers and answers[0].scores else "text").inc(len(answers))
        return PredictResponse(answers=[Answer(**vars(a)) for a in answers])

    @app.get("/v1/tasks", response_model=list[TaskView])
    async def tasks() -> list[dict[str, Any]]:
        return await run_in_threadpool(predictor.tasks)

    @app.get("/v1/tasks/{task_id}", response_model=TaskDetail,
             responses={404: {"description": "unknown task"}})
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

    @app.get("/metrics", response_class=PlainTextResponse,
             responses={200: {"description": "Prometheus text format"}})
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    return app


class ApiServer:
    """The API served by uvicorn on a thread of the training daemon: its socket is bound
    here, so a port in use is an error to log, not the end of the daemon's learning."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        self._sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                          else socket.AF_INET, backlog=64)
        self.port = int(self._sock.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(
            app, log_level="warning", log_config=None, access_log=False, limit_concurrency=64,
            timeout_keep_alive=5))  # log_config None: the daemon's logging stays as it is
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="api", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
