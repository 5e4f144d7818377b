"""Authentication, tenant isolation, health and readiness."""

import socket
import time
from urllib.parse import urlparse

from fastapi.testclient import TestClient

from tests.conftest import BOOTSTRAP_KEY


def test_missing_and_unknown_keys_are_401(anon: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        for method, path, body in [
            ("GET", "/v1/memories", None),
            ("POST", "/v1/memories", {"content": "x", "user_id": "u"}),
            ("POST", "/v1/search", {"query": "x"}),
        ]:
            response = anon.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (headers, path)
            assert response.json()["error"]["code"] == "unauthorized"


def test_bootstrap_key_works(anon: TestClient) -> None:
    response = anon.get("/v1/memories", headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"})
    assert response.status_code == 200


def test_tenants_are_isolated(app, new_key) -> None:  # type: ignore[no-untyped-def]
    key_a, key_b = new_key(), new_key()
    with (
        TestClient(app, headers={"Authorization": f"Bearer {key_a}"}) as a,
        TestClient(app, headers={"Authorization": f"Bearer {key_b}"}) as b,
    ):
        [memory_id] = a.post("/v1/memories", json={"content": "tenant A's secret plan", "user_id": "same-user"}).json()[
            "ids"
        ]
        assert b.get(f"/v1/memories/{memory_id}").status_code == 404
        assert b.patch(f"/v1/memories/{memory_id}", json={"importance": 0}).status_code == 404
        assert b.delete(f"/v1/memories/{memory_id}", params={"hard": "true"}).status_code == 404
        assert b.get(f"/v1/memories/{memory_id}/history").status_code == 404
        assert b.get("/v1/memories", params={"user_id": "same-user"}).json()["memories"] == []
        assert b.post("/v1/search", json={"query": "secret plan", "user_id": "same-user"}).json()["results"] == []
        assert a.get(f"/v1/memories/{memory_id}").json()["content"] == "tenant A's secret plan"
        same_key = a.post("/v1/memories", json={"content": "x", "user_id": "u", "idempotency_key": "k"}).json()["ids"]
        other_key = b.post("/v1/memories", json={"content": "x", "user_id": "u", "idempotency_key": "k"}).json()["ids"]
        assert same_key != other_key


def test_health_and_readiness(anon: TestClient) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = anon.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "schema": True, "model": True}}


def test_unknown_route_and_method_use_error_body(client: TestClient) -> None:
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = client.put("/v1/search", json={})
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_openapi_lists_routes(anon: TestClient) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/memories",
        "/v1/messages",
        "/v1/search",
        "/v1/memories/{memory_id}",
        "/v1/memories/{memory_id}/history",
    ):
        assert path in paths
    assert anon.get("/docs").status_code == 200


def test_idle_connections_outlive_a_clients_keep_alive(live_url: str) -> None:
    """The server keeps an idle connection open past httpx's 5 s keep-alive (LOCI_KEEP_ALIVE_S, 75):
    at uvicorn's default of 5 s both sides time out together, and under load a client sent requests
    on connections the server was closing (read errors in `loci bench load`)."""
    address = urlparse(live_url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: loci\r\n\r\n")
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(6)
        connection.setblocking(False)
        try:
            closed = connection.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:  # nothing to read and not closed: still open
            closed = False
        assert not closed
