"""The feedback API: auth, validation, unknown ids, listings, and a fuzz run with no 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.api import create_app, openapi_document
from monitor.metrics import Metrics
from monitor.records import Position, Record
from monitor.store import BatchWrite, ScoredRecord
from monitor.store.sqlite import SQLiteStore
from monitor.windows import Window
from tests.conftest import ROOT

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "s.db")
    record = Record("known-1", 1_000, "m", "p", "r", Position("f", 0))
    store.write_batch(
        BatchWrite(
            on_time=[ScoredRecord(record, Window(0, 300_000), {"x": 1.0})],
            late_candidates=[],
            dead_letters=[],
            watermark={},
            positions={},
            close_through_ms=300_000,
        )
    )
    store.save_result(Window(0, 300_000), {"metrics": {"count": 1}, "drift": {}, "alerts": []})
    yield store
    store.close()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(store: SQLiteStore, registry: CollectorRegistry) -> TestClient:
    app = create_app(
        store,
        Metrics(registry),
        token=TOKEN,
        labels=["harmful", "biased", "incorrect", "ok"],
        max_body_bytes=2_000,
        ready=lambda: True,
    )
    return TestClient(app)


def test_feedback_requires_the_bearer_token(client: TestClient):
    body = {"record_id": "known-1", "label": "harmful"}
    missing = client.post("/v1/feedback", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert (
        client.post("/v1/feedback", json=body, headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    assert client.get("/v1/windows").status_code == 401
    assert client.get("/v1/alerts").status_code == 401


def test_known_and_unknown_record_ids_are_both_kept(
    client: TestClient, store: SQLiteStore, registry: CollectorRegistry
):
    known = client.post(
        "/v1/feedback",
        json={"record_id": "known-1", "label": "harmful", "note": "slur"},
        headers=AUTH,
    )
    assert known.status_code == 201
    assert known.json()["known"] is True and known.json()["window_start_ms"] == 0
    unknown = client.post("/v1/feedback", json={"record_id": "nope", "label": "ok"}, headers=AUTH)
    assert unknown.status_code == 201 and unknown.json()["known"] is False
    assert store.feedback_counts(Window(0, 300_000)) == {"harmful": 1}
    assert (
        registry.get_sample_value("alignwatch_feedback_total", {"label": "ok", "known": "false"})
        == 1.0
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"label": "harmful"}, "record_id"),
        ({"record_id": "a", "label": "spam"}, "is not one of"),
        ({"record_id": "a", "label": "ok", "colour": "red"}, "colour"),
        ({"record_id": "", "label": "ok"}, "record_id"),
        ({"record_id": 5, "label": "ok"}, "record_id"),
    ],
)
def test_validation_errors_are_422_with_the_reason(client: TestClient, body: dict, fragment: str):
    response = client.post("/v1/feedback", json=body, headers=AUTH)
    assert response.status_code == 422
    assert fragment in response.text


def test_oversized_bodies_are_refused(client: TestClient):
    body = {"record_id": "a", "label": "ok", "note": "x" * 5_000}
    assert client.post("/v1/feedback", json=body, headers=AUTH).status_code == 413


def test_listings_and_health(client: TestClient):
    windows = client.get("/v1/windows", headers=AUTH).json()
    assert windows == [
        {
            "start": "1970-01-01T00:00:00.000Z",
            "end": "1970-01-01T00:05:00.000Z",
            "metrics": {"count": 1},
            "drift": {},
            "alerts": [],
        }
    ]
    assert client.get("/v1/alerts", headers=AUTH).json() == {"firing": [], "notifications": []}
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_not_ready_is_503(store: SQLiteStore):
    app = create_app(
        store,
        Metrics(CollectorRegistry()),
        token=TOKEN,
        labels=["ok"],
        max_body_bytes=100,
        ready=lambda: False,
    )
    assert TestClient(app).get("/readyz").status_code == 503


def test_committed_openapi_matches_the_served_one(client: TestClient):
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == json.loads(openapi_document())
    assert client.get("/openapi.json").json() == committed


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "record_id": JSON | st.text(max_size=600),
        "label": st.sampled_from(["harmful", "ok", "bogus", ""]) | JSON,
        "note": JSON,
        "reviewer": JSON,
        "extra": JSON,
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=FIELDS | JSON, token=st.sampled_from([TOKEN, "", "wrong"]), raw=st.booleans())
def test_fuzzed_feedback_never_gets_a_5xx(client: TestClient, body: object, token: str, raw: bool):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if raw:
        response = client.post(
            "/v1/feedback", content=json.dumps(body)[:-1].encode(), headers=headers
        )
    else:
        response = client.post("/v1/feedback", json=body, headers=headers)
    assert response.status_code in {201, 401, 413, 422}


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit=st.text(max_size=8) | st.integers())
def test_fuzzed_listing_queries_never_get_a_5xx(client: TestClient, limit: object):
    for path in ("/v1/windows", "/v1/alerts"):
        assert client.get(path, params={"limit": limit}, headers=AUTH).status_code in {200, 422}


def test_the_daemon_serves_the_api_and_counts_flags_in_window_metrics(
    tmp_path: Path, write_config, monkeypatch: pytest.MonkeyPatch
):
    import urllib.error
    import urllib.request

    import orjson

    from tests.daemon_process import DaemonProcess
    from tests.generate import make_records
    from tests.net import free_port

    port = free_port()
    monkeypatch.setenv("ALIGNWATCH_API_TOKEN", TOKEN)
    data = tmp_path / "input.jsonl"
    start = 1_793_610_000_000
    records = list(make_records(40, start_ms=start, span_ms=60_000))
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    config = write_config(
        {
            "source": {"file": {"follow": True, "poll_interval": "50ms"}},
            "api": {"port": port},
            "windows": {"allowed_lateness": "0s"},
        }
    )
    base = f"http://127.0.0.1:{port}"

    def call(path: str, body: dict | None = None, token: str | None = TOKEN) -> tuple[int, bytes]:
        request = urllib.request.Request(
            base + path,
            data=None if body is None else orjson.dumps(body),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(lambda: call("/readyz")[0] == 200, 30, "readiness")
        assert call("/healthz") == (200, b'{"status":"ok"}')
        daemon.wait_for(
            lambda: (
                call("/v1/feedback", {"record_id": records[3]["id"], "label": "harmful"})[1].find(
                    b'"known":true'
                )
                > 0
            ),
            30,
            "feedback on a stored record",
        )
        assert call("/v1/feedback", {"record_id": "x", "label": "ok"}, token=None)[0] == 401
        later = {**records[0], "id": "later", "ts": start + 3_600_000}
        with data.open("ab") as handle:
            handle.write(orjson.dumps(later) + b"\n")
        daemon.wait_for(lambda: b"feedback_harmful_count" in call("/v1/windows")[1], 30, "eval")
        windows = orjson.loads(call("/v1/windows")[1])
    finally:
        assert daemon.stop() == 0, daemon.log_tail()
    metrics = windows[-1]["metrics"]
    assert metrics["feedback_harmful_count"] == 1
    assert metrics["feedback_harmful_rate"] == pytest.approx(1 / 40)
    assert metrics["feedback_ok_count"] == 0
    assert TOKEN not in daemon.log_tail(1_000_000)
