"""The HTTP API served beside the daemon: human feedback, windows, alerts, health.

FastAPI for validation and the OpenAPI document (committed as ``docs/openapi.json``).
Every ``/v1`` route needs ``Authorization: Bearer <token>``; the token comes from the
environment variable named by ``api.token_env``.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from monitor.metrics import Metrics
from monitor.store import Store

# Module level: with postponed annotations FastAPI resolves these names in module globals.
_BEARER = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_id: str = Field(min_length=1, max_length=512)
    label: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=4000)
    reviewer: str | None = Field(default=None, max_length=256)


class FeedbackOut(BaseModel):
    id: int
    record_id: str
    label: str
    known: bool = Field(description="false when no stored record has this id (kept anyway)")
    window_start_ms: int | None


class Health(BaseModel):
    status: str


def create_app(
    store: Store,
    metrics: Metrics,
    *,
    token: str,
    labels: list[str],
    max_body_bytes: int,
    ready: Callable[[], bool],
) -> FastAPI:
    app = FastAPI(title="alignwatch", version="1", description=__doc__)
    lock = threading.Lock()  # one feedback write at a time; the store serialises anyway

    def authorised(
        credentials: Credentials,
    ) -> None:
        if credentials is None or not hmac.compare_digest(
            credentials.credentials.encode(), token.encode()
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[..., Any]) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
            return JSONResponse(
                {"detail": f"request body over {max_body_bytes} bytes"},
                413,
            )
        body = await request.body()
        if len(body) > max_body_bytes:
            return JSONResponse(
                {"detail": f"request body over {max_body_bytes} bytes"},
                413,
            )
        return await call_next(request)

    @app.post(
        "/v1/feedback",
        status_code=status.HTTP_201_CREATED,
        response_model=FeedbackOut,
        dependencies=[Depends(authorised)],
        responses={401: {"description": "no or wrong token"}, 413: {"description": "too large"}},
    )
    def post_feedback(feedback: FeedbackIn) -> FeedbackOut:
        if feedback.label not in labels:
            raise HTTPException(
                422,
                f"label {feedback.label!r} is not one of {labels}",
            )
        with lock:
            entry = store.add_feedback(
                feedback.record_id, feedback.label, feedback.note, feedback.reviewer
            )
        metrics.feedback.labels(label=entry.label, known=str(entry.known).lower()).inc()
        return FeedbackOut(
            id=entry.id,
            record_id=entry.record_id,
            label=entry.label,
            known=entry.known,
            window_start_ms=entry.window_start_ms,
        )

    @app.get("/v1/windows", dependencies=[Depends(authorised)])
    def get_windows(limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict[str, Any]]:
        windows = store.evaluated_windows(limit=limit, newest_first=True)
        results = dict(store.results_for(windows))
        return [
            {"start": w.iso_start(), "end": w.iso_end(), **results[w]}
            for w in windows
            if w in results
        ]

    @app.get("/v1/alerts", dependencies=[Depends(authorised)])
    def get_alerts(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        states = store.rule_states()
        return {
            "firing": sorted(rule for rule, state in states.items() if state.get("firing")),
            "notifications": store.outbox_entries(limit),
        }

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    def readyz() -> Any:
        if ready():
            return Health(status="ready")
        return JSONResponse({"status": "not ready"}, status.HTTP_503_SERVICE_UNAVAILABLE)

    return app


def openapi_document() -> str:
    """The OpenAPI document as committed in ``docs/openapi.json`` (``alignwatch openapi``)."""
    import orjson
    from prometheus_client import CollectorRegistry

    from monitor.config import ApiConfig
    from monitor.store.sqlite import SQLiteStore

    store = SQLiteStore(":memory:")
    try:
        app = create_app(
            store,
            Metrics(CollectorRegistry()),
            token="unused",
            labels=ApiConfig().labels,
            max_body_bytes=ApiConfig().max_body_bytes,
            ready=lambda: True,
        )
        return orjson.dumps(
            app.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        ).decode()
    finally:
        store.close()
