"""GET /metrics: real requests, embeddings, jobs and rows show up in the Prometheus exposition.

The database gauges are cluster-wide, so tests compare before/after deltas made in a fresh tenant.
"""

import socket
import time
import uuid
from collections.abc import Callable

import httpx
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from app.db.engine import make_sessionmaker
from app.jobs.embedding_worker import embed_pending
from app.metrics import Metrics
from app.runtime import Runtime
from benchmarks.corpus import conversation_texts
from tests.test_lifecycle_jobs import wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
MEMORY_ROUTE = "/v1/memories/{memory_id}"


def parse(exposition: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels (le excluded), 0 when the series does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _add(client: TestClient, items: list[dict[str, object]]) -> list[str]:
    response = client.post("/v1/memories", json={"memories": items})
    assert response.status_code == 201, response.text
    return response.json()["ids"]


def test_request_histogram_counts_each_request_under_its_route_template(client: TestClient) -> None:
    [memory_id] = _add(client, [{"content": "Ann takes the 8:10 train", "user_id": "ann"}])
    missing = uuid.uuid4()
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/v1/memories/{memory_id}").status_code == 200
    for _ in range(2):
        assert client.get(f"/v1/memories/{missing}").status_code == 404
    assert client.get("/no/such/route").status_code == 404
    after = scrape(client)

    count = "loci_http_request_duration_seconds_count"
    assert delta(before, after, count, method="GET", route=MEMORY_ROUTE, status="2xx") == 3
    assert delta(before, after, count, method="GET", route=MEMORY_ROUTE, status="4xx") == 2
    assert delta(before, after, count, method="GET", route="unmatched", status="4xx") == 1
    # The scrape before this one is counted too (after its own exposition was rendered).
    assert delta(before, after, count, method="GET", route="/metrics", status="2xx") == 1
    labels = {label for (_, pairs) in after for label in pairs}
    assert not any(memory_id in v or str(missing) in v or "/no/such" in v for _, v in labels)


def test_batch_add_and_search_feed_the_embedding_histograms(client: TestClient) -> None:
    texts = conversation_texts(10, seed=77)
    before = scrape(client)
    _add(client, [{"content": t, "user_id": "u"} for t in texts])
    query = f"what did we say about {uuid.uuid4().hex}?"  # never cached: it must reach the embedder
    assert client.post("/v1/search", json={"query": query, "user_id": "u"}).status_code == 200
    after = scrape(client)

    calls = delta(before, after, "loci_embedding_batch_size_count")
    assert calls >= 1
    assert delta(before, after, "loci_embedding_batch_size_sum") >= len(texts) + 1
    assert delta(before, after, "loci_embedding_batch_duration_seconds_count") == calls
    assert delta(before, after, "loci_embedding_batch_duration_seconds_sum") > 0
    search = "loci_http_request_duration_seconds_count"
    assert delta(before, after, search, method="POST", route="/v1/search", status="2xx") == 1
    assert delta(before, after, search, method="POST", route="/v1/memories", status="2xx") == 1


def test_memory_and_pending_gauges_match_what_was_written(
    runtime: Runtime,
    client: TestClient,
    paused_worker: None,
) -> None:
    def drain() -> None:
        while embed_pending(runtime.sessions, runtime.embedder, batch=256):
            pass

    drain()  # nothing pending anywhere: the global gauge can then equal this tenant's count
    before = scrape(client)
    assert value(before, "loci_pending_embeddings") == 0
    facts = _add(
        client,
        [
            {"content": "Ann is vegetarian", "type": "semantic", "user_id": "ann"},
            {"content": "Ann's sister lives in Porto", "type": "semantic", "user_id": "ann"},
        ],
    )
    assert client.delete(f"/v1/memories/{facts[1]}").status_code == 200
    big = runtime.settings.async_embed_batch_min
    _add(client, [{"content": t, "user_id": "ann"} for t in conversation_texts(big, seed=5)])
    after = scrape(client)

    assert delta(before, after, "loci_memories", type="semantic", status="active") == 1
    assert delta(before, after, "loci_memories", type="semantic", status="deleted") == 1
    assert delta(before, after, "loci_memories", type="episodic", status="active") == big
    pending = client.get("/v1/stats").json()["pending_embeddings"]
    assert pending == big
    assert value(after, "loci_pending_embeddings") == pending
    assert value(after, "loci_database_up") == 1

    drain()
    assert value(scrape(client), "loci_pending_embeddings") == client.get("/v1/stats").json()["pending_embeddings"] == 0


def test_a_finished_job_is_timed_and_counted(client: TestClient) -> None:
    _add(client, [{"content": "I moved to Lisbon last month", "user_id": "ann", "session_id": "s1"}])
    before = scrape(client)
    job_id = client.post("/v1/jobs/consolidate", json={"user_id": "ann"}).json()["job_id"]
    assert wait_for(client, job_id)["status"] == "succeeded"

    done = "loci_job_duration_seconds_count"
    queued = "loci_queue_jobs"
    deadline = time.monotonic() + 30
    while True:  # the queue marks its row succeeded just after the job's own row
        after = scrape(client)
        if delta(before, after, queued, task="loci.run_job", status="succeeded") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert delta(before, after, done, kind="consolidate", outcome="succeeded") == 1
    assert delta(before, after, "loci_job_duration_seconds_sum", kind="consolidate", outcome="succeeded") > 0
    assert delta(before, after, queued, task="loci.run_job", status="succeeded") == 1


def test_metrics_stay_out_of_the_openapi_schema(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_token_when_configured(app_with: Callable[..., object], api_key: str) -> None:
    with TestClient(app_with(metrics_token="scrape-secret")) as c:  # type: ignore[arg-type]
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {api_key}"}):
            response = c.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
        assert c.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200


def test_scrapes_are_not_rate_limited(app_with: Callable[..., object], api_key: str) -> None:
    with TestClient(app_with(rate_limit_per_s=0.01, rate_limit_burst=1)) as c:  # type: ignore[arg-type]
        headers = {"Authorization": f"Bearer {api_key}"}
        assert c.get("/v1/stats", headers=headers).status_code == 200
        assert c.get("/v1/stats", headers=headers).status_code == 429
        assert all(c.get("/metrics", headers=headers).status_code == 200 for _ in range(5))


def test_disabled_means_no_route(app_with: Callable[..., object]) -> None:
    with TestClient(app_with(metrics_enabled=False)) as c:  # type: ignore[arg-type]
        assert c.get("/metrics").status_code == 404


def test_openmetrics_on_request(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_database_down_is_reported_not_raised() -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"  # nothing listens there
    engine = create_engine(url, connect_args={"connect_timeout": 2})
    try:
        samples = parse(generate_latest(Metrics(make_sessionmaker(engine)).registry).decode())
    finally:
        engine.dispose()
    assert value(samples, "loci_database_up") == 0
    assert ("loci_pending_embeddings", frozenset()) not in samples


def test_database_counts_can_be_read_less_often(runtime: Runtime, client: TestClient) -> None:
    def episodes(metrics: Metrics) -> float:
        return value(
            parse(generate_latest(metrics.registry).decode()), "loci_memories", type="episodic", status="active"
        )

    throttled = Metrics(runtime.sessions, db_min_interval_s=3600)
    before = episodes(throttled)
    _add(client, [{"content": "one more turn", "user_id": "u"}])
    assert episodes(throttled) == before  # the last count, not a new scan
    assert episodes(Metrics(runtime.sessions)) == before + 1


def test_worker_serves_metrics_on_its_own_port(runtime: Runtime) -> None:
    port = free_port()
    server = runtime.metrics.serve("127.0.0.1", port)
    try:
        samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        server.shutdown()
        server.server_close()
    assert value(samples, "loci_database_up") == 1
    assert ("loci_pending_embeddings", frozenset()) in samples


def test_a_listener_that_does_not_read_shows_in_the_notice_queue_gauge(runtime: Runtime, client: TestClient) -> None:
    """Postgres keeps every notice until the slowest listener has read it; writes of memories notify
    (migration 0008) and fail once the queue is full, so operators need to see it grow."""
    before = value(scrape(client), "loci_notification_queue_usage")
    engine = create_engine(runtime.engine.url)
    try:
        with engine.connect() as stalled, engine.connect() as sender:
            stalled.execute(text("LISTEN loci_test_backlog"))
            stalled.commit()
            for number in range(500):  # ~4 MB: 500 of the queue's 8 KB pages (1,048,576 of them by default)
                payload = f"{number:06d}" * 1300
                sender.execute(text("SELECT pg_notify('loci_test_backlog', :payload)"), {"payload": payload})
                sender.commit()
            assert value(scrape(client), "loci_notification_queue_usage") > before + 300 / 1_048_576
    finally:
        engine.dispose()
