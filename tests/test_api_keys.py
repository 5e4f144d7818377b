"""API keys with permissions: the admin routes and `loci key`, read-only and revoked keys, the
permission every route requires, and keys kept out of logs."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.runtime import Runtime
from app.services.tenants import authenticate, create_tenant_with_key

REPO = Path(__file__).resolve().parents[1]
KEY_FIELDS = {"id", "name", "prefix", "permissions", "created_at", "revoked_at"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _new_key(client: TestClient, *permissions: str, name: str | None = None) -> tuple[str, str]:
    response = client.post("/v1/admin/keys", json={"permissions": list(permissions), "name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"key_id", "key"}
    return body["key_id"], body["key"]


def test_admin_creates_lists_and_revokes_keys(app, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    key_id, key = _new_key(client, "read", name="reader")
    assert key.startswith("loci_")
    listed = client.get("/v1/admin/keys")
    assert listed.status_code == 200 and key not in listed.text and "hash" not in listed.text
    entry = {k["id"]: k for k in listed.json()["keys"]}[key_id]
    assert set(entry) == KEY_FIELDS
    assert (entry["name"], entry["prefix"], entry["permissions"], entry["revoked_at"]) == (
        "reader",
        key[: len(entry["prefix"])],
        ["read"],
        None,
    )
    with TestClient(app, headers=_bearer(key)) as reader:
        assert reader.get("/v1/memories").status_code == 200
        revoked = client.delete(f"/v1/admin/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        refused = reader.get("/v1/memories")  # the very next request
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    again = client.delete(f"/v1/admin/keys/{key_id}")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_a_key_revoked_elsewhere_is_refused_at_once_though_cached(app, client: TestClient, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    """Another process revokes the key (here: straight in the database); this process has its
    principal cached, and every router still refuses it on the next request, writing nothing."""
    key_id, key = _new_key(client, "read", "write", "admin")
    requests = [
        ("GET", "/v1/memories", None),
        ("POST", "/v1/search", {"query": "anything", "user_id": "revoked-u"}),
        ("POST", "/v1/memories", {"content": "must not be stored", "user_id": "revoked-u"}),
        ("POST", "/v1/messages", {"user_id": "revoked-u", "messages": [{"role": "user", "content": "no"}]}),
        ("GET", f"/v1/memories/{uuid.uuid4()}", None),
        ("GET", f"/v1/jobs/{uuid.uuid4()}", None),
        ("POST", "/v1/jobs/consolidate", {"user_id": "revoked-u"}),
        ("GET", "/v1/stats", None),
        ("GET", "/v1/users/revoked-u/footprint", None),
        ("GET", "/v1/admin/keys", None),
        ("GET", "/v1/admin/export", None),
        ("DELETE", "/v1/users/revoked-u", None),
    ]
    with TestClient(app, headers=_bearer(key)) as holder:
        assert holder.get("/v1/memories").status_code == 200  # now cached
        with runtime.sessions.begin() as session:
            session.execute(text("UPDATE api_keys SET revoked_at = now() WHERE id = :id"), {"id": key_id})
        for method, path, body in requests:
            response = holder.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.status_code, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
    stored = client.get("/v1/memories", params={"user_id": "revoked-u"}).json()
    assert stored["memories"] == []


def test_key_requests_that_fail(client: TestClient) -> None:
    for body in (
        {"permissions": ["read", "superuser"]},
        {"permissions": []},
        {"permissions": "read"},
        {"permissions": ["read"], "tenant": "other"},
        {},
    ):
        response = client.post("/v1/admin/keys", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "validation_error"
    missing = client.delete(f"/v1/admin/keys/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.delete("/v1/admin/keys/not-a-uuid").status_code == 422


def test_another_tenants_keys_are_out_of_reach(app, client: TestClient, runtime: Runtime, new_key) -> None:  # type: ignore[no-untyped-def]
    other_key = new_key()
    with runtime.sessions() as session:
        other = authenticate(session, other_key)
    assert other is not None
    assert client.delete(f"/v1/admin/keys/{other.key_id}").status_code == 404
    assert str(other.key_id) not in client.get("/v1/admin/keys").text
    with TestClient(app, headers=_bearer(other_key)) as other_client:
        assert other_client.get("/v1/admin/keys").status_code == 200


def test_permissions_are_enforced(app, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    [memory_id] = client.post("/v1/memories", json={"content": "a fact", "user_id": "u"}).json()["ids"]
    _, reader_key = _new_key(client, "read")
    _, writer_key = _new_key(client, "write")
    writes = [
        ("POST", "/v1/memories", {"content": "x", "user_id": "u"}),
        ("POST", "/v1/messages", {"user_id": "u", "session_id": "s", "messages": [{"role": "user", "content": "x"}]}),
        ("PATCH", f"/v1/memories/{memory_id}", {"importance": 0.1}),
        ("DELETE", f"/v1/memories/{memory_id}", None),
        ("DELETE", "/v1/users/u", None),
    ]
    reads = [
        ("GET", f"/v1/memories/{memory_id}", None),
        ("GET", "/v1/memories", None),
        ("GET", f"/v1/memories/{memory_id}/history", None),
        ("POST", "/v1/search", {"query": "fact"}),
        ("GET", "/v1/users/u/footprint", None),
    ]
    admin = [("GET", "/v1/admin/keys", None), ("POST", "/v1/admin/keys", {"permissions": ["read"]})]
    with TestClient(app, headers=_bearer(reader_key)) as reader, TestClient(app, headers=_bearer(writer_key)) as writer:
        for method, path, body in writes + admin:
            response = reader.request(method, path, json=body)
            assert response.status_code == 403, (method, path)
            assert response.json()["error"]["code"] == "forbidden"
        for method, path, body in reads:
            assert reader.request(method, path, json=body).status_code == 200, (method, path)
        for method, path, body in reads + admin:
            assert writer.request(method, path, json=body).status_code == 403, (method, path)
        assert writer.patch(f"/v1/memories/{memory_id}", json={"importance": 0.2}).status_code == 200


def _permissions(route: APIRoute) -> set[str]:
    """Permissions demanded by the route's dependencies (require() marks its checker)."""
    found, stack = set(), list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if (permission := getattr(dependency.call, "permission", None)) is not None:
            found.add(permission)
        stack.extend(dependency.dependencies)
    return found


def test_every_v1_route_requires_the_right_permission(app) -> None:  # type: ignore[no-untyped-def]
    """Audited from the app itself, so a route added later cannot slip through: every /v1 route needs
    a permission, every route that changes state needs write (or admin), every admin route admin."""
    routes = [
        r.original_route
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIRoute) and r.path.startswith("/v1")
    ]
    assert len(routes) > 10
    for route in routes:
        permissions = _permissions(route)
        label = f"{sorted(route.methods)} {route.path}"
        assert permissions, f"{label} needs no permission"
        if route.path.startswith("/v1/admin"):
            assert "admin" in permissions, label
        elif route.methods != {"GET"} and route.path != "/v1/search":  # search is a read sent as POST
            assert permissions & {"write", "admin"}, label


def _loci(runtime: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCI_DATABASE_URL": runtime.engine.url.render_as_string(hide_password=False)}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "key", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_cli_creates_lists_and_revokes_keys(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    with runtime.sessions.begin() as session:
        create_tenant_with_key(session, tenant)
    created = _loci(runtime, "create", "--tenant", tenant, "-p", "read", "--name", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("loci_") and "key id" in created.stderr
    listed = _loci(runtime, "list", "--tenant", tenant)
    assert listed.returncode == 0 and key not in listed.stdout
    [entry] = [line for line in listed.stdout.splitlines() if '"name":"ci"' in line]
    key_id = entry.split('"id":"')[1].split('"')[0]
    with TestClient(app, headers=_bearer(key)) as client:
        assert client.get("/v1/memories").status_code == 200
        assert client.post("/v1/memories", json={"content": "x", "user_id": "u"}).status_code == 403
        revoked = _loci(runtime, "revoke", key_id, "--tenant", tenant)
        assert revoked.returncode == 0 and '"revoked_at":null' not in revoked.stdout
        assert client.get("/v1/memories").status_code == 401
    assert _loci(runtime, "revoke", str(uuid.uuid4()), "--tenant", tenant).returncode == 2
    assert _loci(runtime, "create", "--tenant", tenant, "-p", "root").returncode == 2
    assert _loci(runtime, "list", "--tenant", "no-such-tenant").returncode == 2


def test_keys_never_reach_the_logs(app, client: TestClient, service_logs) -> None:  # type: ignore[no-untyped-def]
    _, key = _new_key(client, "read", "write")
    with TestClient(app, headers=_bearer(key)) as other:
        other.post("/v1/memories", json={"content": "logged?", "user_id": "u"})
        other.get("/v1/admin/keys")
        other.get("/v1/memories", headers={"Authorization": f"Bearer {key}x"})
    logs = service_logs()
    assert "stored memories" in logs  # the requests were logged...
    assert key not in logs and key[len("loci_") :] not in logs  # ...but never a key
