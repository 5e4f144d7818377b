"""Export and import: a user's memories, links, keys and history survive export, hard delete and
import exactly (search too); files from another embedding model are re-embedded; bad files and id
conflicts are refused with nothing written."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.portability_cli import _LazyEmbedder
from app.runtime import Runtime
from app.services.export_format import COLUMNS
from app.services.tenants import create_tenant_with_key
from app.storable import MAX_NESTING
from memory_types.content import indexed_text
from tests.test_lifecycle_jobs import CONVERSATION, wait_for
from tests.test_update_on_write import _fact

REPO = Path(__file__).resolve().parents[1]
SEARCHES: list[dict[str, Any]] = [
    {"query": "where does Ann live"},
    {"query": "where does Ann live", "include_superseded": True},
    {"query": "where does Ann live", "as_of": "2021-01-01T00:00:00Z"},
    {"query": "Ann's cat"},
    {"query": "What did Ann say about food?", "types": ["episodic"]},
]
# Made by the database on insert, hence not in an export: the tenant, generated tsvectors, a key's copy
# of its memory's scope (a trigger's), identity counters.
NOT_CARRIED = {
    "memories": {"tenant_id", "seq", "content_tsv"},
    "memory_links": {"tenant_id"},
    "memory_keys": {"tenant_id", "text_tsv", "user_id", "agent_id", "session_id"},
    "memory_events": {"tenant_id", "id"},
}
TABLE_OF = {"memory": "memories", "link": "memory_links", "key": "memory_keys", "event": "memory_events"}


@dataclass
class Tenant:
    id: uuid.UUID
    name: str
    client: TestClient


@pytest.fixture(scope="module")
def make_tenant(app, runtime: Runtime) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    clients: list[TestClient] = []

    def make() -> Tenant:
        name = f"port-{os.urandom(5).hex()}"
        with runtime.sessions.begin() as session:
            key = create_tenant_with_key(session, name)
            tenant_id = session.execute(text("SELECT id FROM tenants WHERE name = :n"), {"n": name}).scalar_one()
        client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
        clients.append(client)
        return Tenant(tenant_id, name, client)

    yield make
    for client in clients:
        client.close()


def _state(runtime: Runtime, tenant_id: uuid.UUID, user_id: str) -> dict[str, list[Any]]:
    """Every stored row of the user, as the database renders it (vectors as pgvector text), in order;
    only what an import cannot keep is left out (identity numbers and generated columns)."""
    mine = "SELECT id FROM memories WHERE tenant_id = :t AND user_id = :u"
    queries = {
        "memory": "SELECT to_jsonb(m) - 'seq' - 'content_tsv' FROM memories m "
        "WHERE tenant_id = :t AND user_id = :u ORDER BY seq",
        "link": f"SELECT to_jsonb(l) FROM memory_links l WHERE src_id IN ({mine}) ORDER BY created_at, id",
        "key": f"SELECT to_jsonb(k) - 'text_tsv' FROM memory_keys k WHERE memory_id IN ({mine}) ORDER BY id",
        "event": f"SELECT to_jsonb(e) - 'id' FROM memory_events e WHERE memory_id IN ({mine}) ORDER BY id",
    }
    with runtime.sessions() as session:
        return {name: list(session.scalars(text(q), {"t": tenant_id, "u": user_id})) for name, q in queries.items()}


def _search(client: TestClient, runtime: Runtime) -> list[list[tuple[str, float]]]:
    out = []
    for body in SEARCHES:
        response = client.post("/v1/search", json={**body, "user_id": "ann", "k": 10})
        assert response.status_code == 200, response.text
        out.append([(r["id"], r["score"]) for r in response.json()["results"]])
    runtime.access_counts.flush()  # the hits' use counts land now, not during a later step
    return out


def _import(client: TestClient, body: str, **params: str) -> Any:
    return client.post(
        "/v1/admin/import", content=body.encode(), params=params, headers={"Content-Type": "application/x-ndjson"}
    )


def _wipe(client: TestClient, user_id: str = "ann") -> None:
    assert client.delete(f"/v1/users/{user_id}").status_code == 200
    assert set(client.get(f"/v1/users/{user_id}/footprint").json()["counts"].values()) == {0}


@dataclass
class Seeded:
    tenant: Tenant
    export: str
    state: dict[str, list[Any]]
    searches: list[list[tuple[str, float]]]
    histories: dict[str, list[Any]]
    old_fact: str


@pytest.fixture(scope="module")
def seeded(make_tenant, runtime: Runtime) -> Seeded:  # type: ignore[no-untyped-def]
    """Ann: a consolidated conversation (facts, keys, links, a summary), a superseded fact, an
    updated and a soft-deleted memory; Bob: one memory that a user-scoped export must leave out."""
    tenant = make_tenant()
    c = tenant.client
    episodes = c.post("/v1/messages", json={"user_id": "ann", "session_id": "s1", "messages": CONVERSATION})
    old_fact = _fact(c, "Oslo", "2020-03-01T00:00:00Z")
    new_fact = _fact(c, "Porto", "2024-06-01T00:00:00Z")
    extra = c.post(
        "/v1/memories",
        json={"memories": [
            {"content": "Ann prefers window seats", "user_id": "ann", "metadata": {"src": "crm"}, "importance": 0.9},
            {"content": "Ann's old phone number", "user_id": "ann", "expires_at": "2030-01-01T00:00:00Z"},
            {"content": "Bob plays the cello", "user_id": "bob"},
        ]},
    ).json()["ids"]  # fmt: skip
    assert c.patch(f"/v1/memories/{extra[0]}", json={"content": "Ann prefers aisle seats"}).status_code == 200
    assert c.delete(f"/v1/memories/{extra[1]}").status_code == 200
    job = c.post("/v1/jobs/consolidate", json={"user_id": "ann"}).json()
    assert wait_for(c, job["job_id"])["status"] == "succeeded"

    response = c.get("/v1/admin/export", params={"user_id": "ann"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    state = _state(runtime, tenant.id, "ann")
    assert len(state["key"]) >= 4 and len(state["link"]) >= 5 and episodes.status_code == 201
    histories = {m: c.get(f"/v1/memories/{m}/history").json()["events"] for m in (old_fact, new_fact, extra[0])}
    return Seeded(tenant, response.text, state, _search(c, runtime), histories, old_fact)


def _records(export: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in export.splitlines()]


def _dump(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_round_trip_restores_rows_search_and_history(seeded: Seeded, runtime: Runtime) -> None:
    c = seeded.tenant.client
    _wipe(c)
    response = _import(c, seeded.export)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["imported"] == {kind: len(rows) for kind, rows in seeded.state.items()}
    assert summary["reembedded"] is False and summary["unresolved_supersessions"] == 0

    assert _state(runtime, seeded.tenant.id, "ann") == seeded.state  # vectors, times, status, counts: all of it
    for before, after in zip(seeded.searches, _search(c, runtime), strict=True):
        assert [i for i, _ in after] == [i for i, _ in before]
        assert np.allclose([s for _, s in after], [s for _, s in before], rtol=0, atol=1e-6)
    assert seeded.searches[2] and seeded.searches[2][0][0] == seeded.old_fact  # as_of found the superseded fact
    for memory_id, events in seeded.histories.items():
        restored = c.get(f"/v1/memories/{memory_id}/history").json()["events"]
        assert [{**e, "id": 0} for e in restored] == [{**e, "id": 0} for e in events]


def test_user_export_leaves_other_users_out_and_ends_with_counts(seeded: Seeded) -> None:
    records = _records(seeded.export)
    header, end = records[0], records[-1]
    assert header["format"] == "loci-export" and header["version"] == 1 and header["dims"] == 384
    assert header["scope"]["user_id"] == "ann"
    memories = [r for r in records[1:] if r["kind"] == "memory"]
    assert memories and {r["row"]["user_id"] for r in memories} == {"ann"}
    assert end == {"kind": "end", "counts": {k: sum(r["kind"] == k for r in records[1:]) for k in TABLE_OF}}
    session = _records(seeded.tenant.client.get("/v1/admin/export", params={"session_id": "s1"}).text)
    held = {r["row"]["id"] for r in session if r.get("kind") == "memory"}
    assert held and {r["row"]["session_id"] for r in session if r.get("kind") == "memory"} == {"s1"}
    assert all({r["row"]["src_id"], r["row"]["dst_id"]} <= held for r in session if r.get("kind") == "link")
    whole = _records(seeded.tenant.client.get("/v1/admin/export").text)
    assert "Bob plays the cello" in {r["row"]["content"] for r in whole if r.get("kind") == "memory"}
    assert whole[0]["scope"]["user_id"] is None


def test_export_carries_every_column_of_the_schema(runtime: Runtime, seeded: Seeded) -> None:
    """A column added by a migration must reach the ORM model (and so the export), or be listed
    here as one the database makes itself."""
    with runtime.sessions() as session:
        for kind, table in TABLE_OF.items():
            live = set(
                session.scalars(
                    text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"), {"t": table}
                )
            )
            carried = {c.name for c in COLUMNS[kind]}
            assert carried == live - NOT_CARRIED[table], table
    kinds = {r["kind"]: set(r["row"]) for r in _records(seeded.export)[1:-1]}
    assert kinds == {kind: {c.name for c in COLUMNS[kind]} for kind in TABLE_OF}


def test_import_with_another_model_re_embeds(seeded: Seeded, runtime: Runtime) -> None:
    records = _records(seeded.export)
    records[0].update(embedding_model="some-other-model", dims=8)
    for record in records[1:-1]:
        row = record["row"]
        if row.get("embedding") is not None:
            row["embedding"] = [0.5] * 8
        if record["kind"] == "memory":
            row["embedding_model"] = "some-other-model"
    c = seeded.tenant.client
    _wipe(c)
    response = _import(c, _dump(records))
    assert response.status_code == 200, response.text
    assert response.json()["reembedded"] is True
    with runtime.sessions() as session:
        memories = session.execute(
            text("SELECT content, attributes, embedding, embedding_model FROM memories WHERE tenant_id = :t AND user_id = 'ann' "
                 "ORDER BY seq"), {"t": seeded.tenant.id}
        ).all()  # fmt: skip
        keys = session.execute(
            text("SELECT k.text, k.embedding FROM memory_keys k JOIN memories m ON m.id = k.memory_id "
                 "WHERE m.tenant_id = :t AND m.user_id = 'ann' ORDER BY k.created_at, k.id"), {"t": seeded.tenant.id}
        ).all()  # fmt: skip
    assert {m.embedding_model for m in memories} == {runtime.embedder.model_name}
    fresh = runtime.embedder.embed([indexed_text(m.content, m.attributes) for m in memories])
    assert np.allclose([json.loads(m.embedding) for m in memories], fresh, atol=1e-5)
    fresh_keys = runtime.embedder.embed([k.text for k in keys])
    assert np.allclose([json.loads(k.embedding) for k in keys], fresh_keys, atol=1e-5)
    # Put the exact original back for the other tests of the module.
    _wipe(c)
    assert _import(c, seeded.export).status_code == 200


def test_cli_round_trip(seeded: Seeded, runtime: Runtime, tmp_path: Path) -> None:
    env = {**os.environ, "LOCI_HOME": str(runtime.settings.home), "HF_HUB_OFFLINE": "1"}
    env.pop("LOCI_DATABASE_URL", None)
    out = tmp_path / "ann.jsonl"

    def loci(*args: str, ok: bool = True) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=180
        )
        if not ok:
            return done
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    exported = loci("export", "--tenant", seeded.tenant.name, "--user-id", "ann", "--out", str(out))
    assert exported["exported"]["memory"] == len(seeded.state["memory"])
    _wipe(seeded.tenant.client)
    imported = loci("import", str(out), "--tenant", seeded.tenant.name)
    assert imported["imported"]["event"] == len(seeded.state["event"])
    assert _state(runtime, seeded.tenant.id, "ann") == seeded.state
    again = loci("import", str(out), "--tenant", seeded.tenant.name, ok=False)
    assert again.returncode == 1 and "nothing was imported" in again.stderr


def test_cli_import_re_embeds_with_the_services_encoder(runtime: Runtime) -> None:
    """`loci import` of another model's file embeds as the service would (same backend, same vectors)."""
    texts = ["Ann moved to Lisbon in the spring of 2023 and loves the trams there."]
    with closing(_LazyEmbedder(runtime.settings)) as lazy:
        vectors = lazy(texts)
        assert lazy.embedder is not None and lazy.embedder.backend == runtime.embedder.backend
    np.testing.assert_allclose(vectors, runtime.embedder.embed(texts), atol=1e-5)


@pytest.fixture()
def small(make_tenant) -> tuple[Tenant, str]:  # type: ignore[no-untyped-def]
    """A tenant whose user 'ann' was exported (two facts, one superseding the other) and then deleted."""
    tenant = make_tenant()
    _fact(tenant.client, "Oslo", "2020-03-01T00:00:00Z")
    _fact(tenant.client, "Rome", "2024-06-01T00:00:00Z")
    export = tenant.client.get("/v1/admin/export").text
    _wipe(tenant.client)
    return tenant, export


def _with(records: list[dict[str, Any]], **values: Any) -> list[dict[str, Any]]:
    """The records with these column values on every memory."""
    return [{**r, "row": {**r["row"], **values}} if r.get("kind") == "memory" else r for r in records]


def _refused(client: TestClient, body: str, status: int, **params: str) -> dict[str, Any]:
    response = _import(client, body, **params)
    assert response.status_code == status, response.text
    assert set(client.get("/v1/users/ann/footprint").json()["counts"].values()) == {0}  # nothing written
    return response.json()["error"]


def test_malformed_files_are_refused_with_the_line_and_nothing_written(small: tuple[Tenant, str]) -> None:
    tenant, export = small
    lines = export.splitlines(keepends=True)
    last_event = len(lines) - 1  # 1-based number of the last event line, written after every memory
    broken = "".join(lines[: last_event - 1]) + "{not json\n" + "".join(lines[last_event:])
    error = _refused(tenant.client, broken, 422)
    assert error["code"] == "invalid_import" and error["details"]["line"] == last_event

    assert _refused(tenant.client, '{"format": "csv"}\n' + "".join(lines[1:]), 422)["details"]["line"] == 1
    assert _refused(tenant.client, "".join(lines[:-1]), 422)["message"].endswith("(truncated?)")
    unknown = "".join(lines[:-1]) + '{"kind": "tenant"}\n' + lines[-1]
    assert _refused(tenant.client, unknown, 422)["details"]["field"] == "kind"

    records = _records(export)
    assert "constraint" in _refused(tenant.client, _dump(_with(records, status="bogus")), 422)["details"]
    # Attributes must fit the memory's type, as on a write: search and the jobs read them.
    for values in ({"attributes": {"confidence": "very"}}, {"attributes": {"speaker": 7}}, {"attributes": [1]}):
        assert _refused(tenant.client, _dump(_with(records, **values)), 422)["details"]["field"] == "attributes"
    assert _refused(tenant.client, _dump(_with(records, type="dream")), 422)["details"]["field"] == "type"
    for moment in ("yesterday", "0001-01-01T00:00:00+14:00"):  # the second is in year 0 in UTC
        bad_time = _with(records, created_at=moment)
        assert _refused(tenant.client, _dump(bad_time), 422)["details"]["field"] == "created_at"
    unstorable = (
        ("importance", float("nan")),
        ("content", "half a pair \ud800"),
        ("metadata", {"k": "\x00"}),
        ("metadata", {"k": json.loads("[" * MAX_NESTING + "]" * MAX_NESTING)}),  # one level too many
    )
    for column, value in unstorable:
        assert _refused(tenant.client, _dump(_with(records, **{column: value})), 422)["details"]["field"] == column
    twice = [
        *records[:2],
        records[1],
        *records[2:-1],
        {**records[-1], "counts": {**records[-1]["counts"], "memory": 3}},
    ]
    assert _refused(tenant.client, _dump(twice), 422)["details"] == {"line": 3, "field": "id"}
    orphan = [r for r in records if r.get("kind") != "memory" or r["row"]["content"] != "Ann lives in Oslo"]
    orphan[-1] = {"kind": "end", "counts": {k: sum(r.get("kind") == k for r in orphan) for k in TABLE_OF}}
    assert "no earlier line" in _refused(tenant.client, _dump(orphan), 422)["message"]


def test_conflicting_ids_fail_or_skip(small: tuple[Tenant, str], make_tenant) -> None:  # type: ignore[no-untyped-def]
    tenant, export = small
    assert _import(tenant.client, export).status_code == 200
    again = _import(tenant.client, export)
    assert again.status_code == 409 and again.json()["error"]["code"] == "import_conflict"
    assert len(again.json()["error"]["details"]["ids"]) == 2
    skipped = _import(tenant.client, export, on_conflict="skip").json()
    assert skipped["imported"] == {"memory": 0, "link": 0, "key": 0, "event": 0}
    assert skipped["skipped"]["memory"] == 2 and skipped["skipped"]["event"] == 3

    other = make_tenant()  # the ids belong to another tenant: refused, and nothing of it leaks in
    assert _refused(other.client, export, 409)["code"] == "import_conflict"
    assert _import(other.client, export, on_conflict="skip").json()["skipped"]["memory"] == 2
    assert other.client.get("/v1/memories", params={"user_id": "ann"}).json()["memories"] == []
    assert tenant.client.get("/v1/users/ann/footprint").json()["counts"]["memories"] == 2


def test_routes_need_the_admin_permission(small: tuple[Tenant, str]) -> None:
    tenant, export = small
    created = tenant.client.post("/v1/admin/keys", json={"permissions": ["read", "write"]}).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert tenant.client.get("/v1/admin/export", headers=headers).status_code == 403
    response = tenant.client.post("/v1/admin/import", content=export.encode(), headers=headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert tenant.client.post("/v1/admin/import", params={"on_conflict": "merge"}, content=b"").status_code == 422
