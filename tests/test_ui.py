"""The web memory browser (/ui): sign-in, filters, a memory's page, delete and restore, and every way
bad input or a missing right is refused with a 4xx page.

The first tests speak HTTP to the app (TestClient); the last drives Debian's chromium through
Playwright against a live uvicorn and skips when /usr/bin/chromium is absent. With
LOCI_UI_SCREENSHOTS=docs/img it also saves the screenshots the docs show.
"""

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.ui.auth import COOKIE, csrf_token

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONVERSATION = [
    {"role": "user", "name": "Ann", "content": "I moved to Lisbon last spring. My favourite food is grilled sardines."},
    {"role": "assistant", "content": "Lisbon is lovely! Do you cook sardines at home?"},
    {"role": "user", "name": "Ann", "content": "Sometimes. I adopted a cat named Miso in May."},
    {"role": "user", "name": "Ann", "content": "I work at a small design studio near the river."},
]


def _key_with(client: TestClient, *permissions: str) -> str:
    response = client.post("/v1/admin/keys", json={"permissions": list(permissions), "name": "ui-test"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def _sign_in(client: TestClient, key: str) -> None:
    response = client.post("/ui/login", data={"key": key, "next": "/ui/search"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/search"


@pytest.fixture()
def browser_client(app, api_key: str) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A signed-in browser session (the cookie), which also holds the key's bearer header to seed data."""
    with TestClient(app, headers={"Authorization": f"Bearer {api_key}"}) as c:
        _sign_in(c, api_key)
        yield c


def _add(client: TestClient, content: str, **fields: object) -> str:
    response = client.post("/v1/memories", json={"content": content, "user_id": "ann", **fields})
    assert response.status_code == 201, response.text
    return response.json()["ids"][0]


def test_pages_need_a_signed_in_key(anon: TestClient, api_key: str) -> None:
    response = anon.get("/ui/timeline?user_id=ann", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Ftimeline%3Fuser_id%3Dann"

    bad = anon.post("/ui/login", data={"key": "loci_not_a_key"})
    assert bad.status_code == 401
    assert "unknown or revoked API key" in bad.text
    assert COOKIE not in anon.cookies
    blank = anon.post("/ui/login", data={"key": "  "})
    assert blank.status_code == 401 and "enter an API key" in blank.text

    good = anon.post("/ui/login", data={"key": api_key, "next": "/ui/timeline"}, follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/ui/timeline"
    cookie = good.headers["set-cookie"]
    for part in ("HttpOnly", "SameSite=strict", "Path=/ui"):
        assert part.lower() in cookie.lower(), cookie
    assert "max-age" not in cookie.lower()  # a session cookie: gone when the browser closes
    page = anon.get("/ui/search")
    assert page.status_code == 200 and "No memories match." in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"

    signed_out = anon.post("/ui/logout", data={"token": csrf_token(api_key)}, follow_redirects=False)
    assert signed_out.status_code == 303
    assert anon.get("/ui/search", follow_redirects=False).status_code == 303


def test_sign_in_refuses_open_redirects_and_keys_that_cannot_read(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    write_only = _key_with(client, "write")
    with TestClient(app) as browser:
        refused = browser.post("/ui/login", data={"key": write_only})
        assert refused.status_code == 403 and "lacks the &#39;read&#39; permission" in refused.text
        reader = _key_with(client, "read")
        for target in ("https://evil.example/", "//evil.example/ui/", "/v1/memories", "/ui\\@evil"):
            response = browser.post("/ui/login", data={"key": reader, "next": target}, follow_redirects=False)
            assert response.headers["location"] == "/ui/search", target


def test_sign_in_forms_from_another_site_are_refused(app, api_key: str) -> None:  # type: ignore[no-untyped-def]
    """Login CSRF: a page elsewhere posting its author's key must not sign the visitor in."""
    with TestClient(app) as browser:
        for headers in (
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
        ):
            refused = browser.post("/ui/login", data={"key": api_key}, headers=headers, follow_redirects=False)
            assert refused.status_code == 403 and "sign in from this site" in refused.text, headers
            assert COOKIE not in browser.cookies and "set-cookie" not in refused.headers, headers
        for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://testserver"}, {}):
            accepted = browser.post("/ui/login", data={"key": api_key}, headers=headers, follow_redirects=False)
            assert accepted.status_code == 303 and COOKIE in browser.cookies, headers
            browser.cookies.clear()


def test_a_revoked_key_signs_the_browser_out(browser_client: TestClient, api_key: str) -> None:
    other = _key_with(browser_client, "read")
    _sign_in(browser_client, other)
    assert browser_client.get("/ui/search", follow_redirects=False).status_code == 200
    key_id = next(k["id"] for k in browser_client.get("/v1/admin/keys").json()["keys"] if k["name"] == "ui-test")
    assert browser_client.delete(f"/v1/admin/keys/{key_id}").status_code == 200
    assert browser_client.get("/ui/search", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/ui/memories/not-a-uuid", 422, "memory_id"),
        (f"/ui/memories/{uuid.uuid4()}", 404, "memory not found"),
        ("/ui/search?type=bogus", 422, "type"),
        ("/ui/search?status=gone", 422, "status"),
        ("/ui/search?from=2024-13-01", 422, "from"),
        ("/ui/search?from=2024-05-02&to=2024-05-01", 422, "is after"),
        ("/ui/search?after=0", 422, "after"),
        ("/ui/search?after=abc", 422, "after"),
        ("/ui/search?after=99999999999999999999", 422, "after"),
        (f"/ui/search?user_id={'u' * 201}", 422, "user_id"),
        (f"/ui/search?q={'x' * 5000}", 422, "q"),
        ("/ui/timeline?to=not-a-date", 422, "to"),
        ("/ui/login?next=" + "n" * 2001, 422, "next"),
        ("/ui/no/such/page", 404, "there is no page"),
    ],
)
def test_bad_input_is_a_4xx_page(browser_client: TestClient, path: str, status: int, says: str) -> None:
    response = browser_client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert says in response.text


def test_filters_and_time_range(browser_client: TestClient) -> None:
    old = _add(browser_client, "Ann visited Rome", event_at="2023-04-10T09:00:00Z")
    new = _add(browser_client, "Ann visited Oslo", event_at="2024-06-01T09:00:00Z")
    _add(browser_client, "Bob visited Rome", user_id="bob", event_at="2023-04-10T10:00:00Z")
    page = browser_client.get("/ui/search", params={"user_id": "ann", "to": "2023-12-31", "from": "", "type": ""})
    assert page.status_code == 200
    assert old in page.text and new not in page.text and "Bob visited" not in page.text
    ranked = browser_client.get("/ui/search", params={"q": "visited Rome", "from": "2023-04-10", "to": "2023-04-10"})
    assert old in ranked.text and "Bob visited Rome" in ranked.text and new not in ranked.text
    assert "score" in ranked.text
    # The far end of the calendar is a filter like any other, not an overflow.
    assert browser_client.get("/ui/timeline", params={"user_id": "ann", "to": "9999-12-31"}).status_code == 200
    users = browser_client.get("/ui/timeline").text
    assert "ann" in users and "bob" in users
    timeline = browser_client.get("/ui/timeline", params={"user_id": "ann"}).text
    assert timeline.index("Ann visited Oslo") < timeline.index("Ann visited Rome")  # newest first
    assert "Saturday 01 June 2024" in timeline and "Monday 10 April 2023" in timeline


def test_pages_count_days_and_show_times_in_the_browsers_zone(browser_client: TestClient) -> None:
    """Told at 05:00 UTC on 1 June, 10 p.m. on 31 May in Los Angeles: with the zone the page's script
    keeps in its cookie, the 31st's range and heading hold it and its time reads as LA's; without the
    cookie, or with one that names no zone, days and times are UTC's."""
    told = _add(browser_client, "Ann grilled sardines", user_id="zoned", event_at="2024-06-01T05:00:00Z")
    may_31 = {"user_id": "zoned", "from": "2024-05-31", "to": "2024-05-31"}
    browser_client.cookies.set("loci_tz", "America/Los_Angeles", path="/ui")
    in_la = browser_client.get("/ui/timeline", params=may_31).text
    assert told in in_la and "Friday 31 May 2024" in in_la and "22:00" in in_la
    assert "2024-05-31 22:00 America/Los_Angeles" in browser_client.get(f"/ui/memories/{told}").text
    searched = browser_client.get("/ui/search", params={"q": "what did Ann grill yesterday", **may_31}).text
    assert told in searched
    for cookie in (None, "Nowhere/Special"):
        browser_client.cookies.delete("loci_tz", path="/ui")
        if cookie:
            browser_client.cookies.set("loci_tz", cookie, path="/ui")
        in_utc = browser_client.get("/ui/timeline", params=may_31)
        assert in_utc.status_code == 200 and told not in in_utc.text
        assert "2024-06-01 05:00 UTC" in browser_client.get(f"/ui/memories/{told}").text


def test_browsing_pages_and_does_not_count_as_recall(browser_client: TestClient) -> None:
    ids = browser_client.post(
        "/v1/memories", json={"memories": [{"content": f"note {i}", "user_id": "pager"} for i in range(55)]}
    ).json()["ids"]
    first = browser_client.get("/ui/search", params={"user_id": "pager"}).text
    assert first.count('class="memory"') == 50 and "Older" in first
    after = first.split("after=")[1].split('"')[0]
    second = browser_client.get("/ui/search", params={"user_id": "pager", "after": after}).text
    assert second.count('class="memory"') == 5 and "Older" not in second
    browser_client.get("/ui/search", params={"q": "note 3", "user_id": "pager"})
    assert browser_client.get(f"/v1/memories/{ids[3]}").json()["access_count"] == 0


def test_changes_need_the_form_token_and_the_write_permission(browser_client: TestClient, app, api_key: str) -> None:  # type: ignore[no-untyped-def]
    memory_id = _add(browser_client, "Ann is vegetarian", type="semantic")
    token = csrf_token(api_key)
    for data in ({}, {"token": "forged"}):
        refused = browser_client.post(f"/ui/memories/{memory_id}/delete", data=data)
        assert refused.status_code == 403 and "token" in refused.text
    assert browser_client.get(f"/v1/memories/{memory_id}").json()["status"] == "active"

    not_restorable = browser_client.post(f"/ui/memories/{memory_id}/restore", data={"token": token})
    assert not_restorable.status_code == 409
    gone = browser_client.post(f"/ui/memories/{uuid.uuid4()}/delete", data={"token": token})
    assert gone.status_code == 404
    unknown = browser_client.post(f"/ui/memories/{memory_id}/archive", data={"token": token})
    assert unknown.status_code == 422 and "action" in unknown.text

    reader = _key_with(browser_client, "read")
    with TestClient(app) as read_only:
        _sign_in(read_only, reader)
        page = read_only.get(f"/ui/memories/{memory_id}")
        assert page.status_code == 200 and "read-only key" in page.text
        refused = read_only.post(f"/ui/memories/{memory_id}/delete", data={"token": csrf_token(reader)})
        assert refused.status_code == 403 and "read-only" in refused.text
    assert browser_client.get(f"/v1/memories/{memory_id}").json()["status"] == "active"

    deleted = browser_client.post(f"/ui/memories/{memory_id}/delete", data={"token": token}, follow_redirects=False)
    assert deleted.status_code == 303
    assert browser_client.get(f"/v1/memories/{memory_id}").json()["status"] == "deleted"
    history = browser_client.get(f"/v1/memories/{memory_id}/history").json()["events"]
    assert history[-1]["op"] == "delete" and history[-1]["actor"].endswith(":ui")


def test_another_tenants_memory_is_not_found(browser_client: TestClient, app, new_key) -> None:  # type: ignore[no-untyped-def]
    memory_id = _add(browser_client, "Ann's secret")
    stranger = new_key()
    with TestClient(app) as other:
        _sign_in(other, stranger)
        assert other.get(f"/ui/memories/{memory_id}").status_code == 404
        assert other.post(f"/ui/memories/{memory_id}/delete", data={"token": csrf_token(stranger)}).status_code == 404
        assert "Ann&#39;s secret" not in other.get("/ui/search").text


def test_ui_routes_stay_out_of_the_openapi_schema(browser_client: TestClient) -> None:
    paths = browser_client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]


def _wait_for_job(api: httpx.Client, job_id: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while (job := api.get(f"/v1/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "succeeded", job


def _seed(api: httpx.Client) -> dict[str, str]:
    """Ann's chat, consolidated (facts derived from it, a summary, related links), a fact that a newer one
    supersedes, and Bob's memory for the filters to leave out."""
    add = api.post("/v1/messages", json={"user_id": "ann", "session_id": "chat-1", "messages": CONVERSATION})
    assert add.status_code == 201, add.text
    job = api.post("/v1/jobs/consolidate", json={"user_id": "ann"})
    assert job.status_code == 202, job.text
    _wait_for_job(api, job.json()["job_id"])
    ids = {}
    for name, city, day in (("porto", "Porto", "2022-01-10"), ("lisbon", "Lisbon", "2024-03-02")):
        body = {
            "type": "semantic",
            "content": f"Ann's home city is {city}",
            "user_id": "ann",
            "event_at": f"{day}T10:00:00Z",
            "attributes": {"subject": "Ann", "predicate": "home city", "object": city},
        }
        ids[name] = api.post("/v1/memories", json=body).json()["ids"][0]
    api.post("/v1/memories", json={"content": "Bob's home city is Berlin", "user_id": "bob", "type": "semantic"})
    ids["reader"] = api.post("/v1/admin/keys", json={"permissions": ["read"]}).json()["key"]
    return ids


def test_browser_flow_in_chromium(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Sign in (a bad key, then a good one), search with filters, open a memory (history, the link graph),
    delete it, see it gone from search, restore it; a read-only key cannot delete."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = os.environ.get("LOCI_UI_SCREENSHOTS")
    base = live_server.url
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {live_server.api_key}"}) as api:
        ids = _seed(api)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tempfile.mkdtemp(dir=tmp_path),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1180, "height": 900},
            timezone_id="America/Denver",
        )
        try:
            page = browser.new_page()
            page.on("dialog", lambda dialog: dialog.accept())  # the delete confirmation
            page.goto(f"{base}/ui/search")
            assert page.url.startswith(f"{base}/ui/login")
            page.fill("input[name=key]", "loci_not_a_key")
            page.click("button[type=submit]")
            assert "unknown or revoked API key" in page.inner_text("[role=alert]")
            page.fill("input[name=key]", live_server.api_key)
            page.click("button[type=submit]")
            assert page.url == f"{base}/ui/search"
            assert {"name": "loci_tz", "value": "America/Denver"}.items() <= next(
                c for c in browser.cookies() if c["name"] == "loci_tz"
            ).items(), "the page's script did not tell the server the browser's zone"

            page.fill("input[name=q]", "which city does Ann live in")
            page.fill("input[name=user_id]", "ann")
            page.select_option("select[name=type]", "semantic")
            page.click("form.filters button[type=submit]")
            rows = page.locator("li.memory")
            contents = rows.locator("a.content").all_inner_texts()
            assert "Ann's home city is Lisbon" in contents
            assert not [c for c in contents if "Bob" in c or "Porto" in c]  # another user; superseded
            assert all("semantic" in text for text in rows.locator(".meta").all_inner_texts())
            if shots:
                page.screenshot(path=str(Path(shots) / "ui-search.png"), full_page=True)
            search_url = page.url

            page.click('a.content:text-is("Ann\'s home city is Lisbon")')
            assert page.url == f"{base}/ui/memories/{ids['lisbon']}"
            assert "create" in page.inner_text("table.history")
            assert page.locator(f"svg.graph a.node[href='/ui/memories/{ids['porto']}']").count() == 1
            assert page.locator("svg.graph .edge text").all_text_contents() == ["supersedes"]

            page.click("button.danger")
            assert page.inner_text("[role=status]") == "Memory deleted."
            assert "delete" in page.inner_text("table.history")
            page.goto(search_url)
            assert "Ann's home city is Lisbon" not in page.locator("li.memory").all_inner_texts()
            page.goto(f"{base}/ui/memories/{ids['lisbon']}")
            page.click("text=Restore")
            assert page.inner_text("[role=status]") == "Memory restored."
            page.goto(search_url)
            assert "Ann's home city is Lisbon" in page.locator("a.content").all_inner_texts()

            if shots:
                episode = api_episode(base, live_server.api_key)
                page.goto(f"{base}/ui/memories/{episode}")
                page.screenshot(path=str(Path(shots) / "ui-memory.png"), full_page=True)

            page.click("button.link")  # sign out
            assert page.url == f"{base}/ui/login"
            page.fill("input[name=key]", ids["reader"])
            page.click("button[type=submit]")
            page.goto(f"{base}/ui/memories/{ids['lisbon']}")
            assert "read-only key" in page.inner_text("header")
            page.click("button.danger")
            assert "read-only" in page.inner_text("[role=alert]")
        finally:
            browser.close()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {live_server.api_key}"}) as api:
        assert api.get(f"/v1/memories/{ids['lisbon']}").json()["status"] == "active"


def api_episode(base: str, key: str) -> str:
    """Ann's first message: consolidation linked facts and a summary to it, the richest graph to show."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as api:
        episodes = api.get("/v1/memories", params={"user_id": "ann", "type": "episodic"}).json()["memories"]
    return episodes[0]["id"]
