"""The web memory browser under /ui: sign in with an API key, search and browse, a user's timeline, a
memory's page (history, links, provenance), soft delete and restore.

Pages call the same services as the API, inside the key's tenant wall; they stay out of the OpenAPI
schema, which describes the JSON API only.
"""

import itertools
import uuid
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from app.api.deps import RuntimeDep
from app.api.serialize import memory_out
from app.db.tenancy import tenant_session
from app.errors import ApiError
from app.services import browsing, lifecycle, memory_store
from app.services.searching import run_search
from app.ui.auth import (
    PATH,
    CurrentViewer,
    Viewer,
    check_change,
    check_token,
    clear_key_cookie,
    from_another_site,
    safe_next,
    set_key_cookie,
    sign_in,
)
from app.ui.filters import STATUSES, Filters
from app.ui.graph import layout
from app.ui.history import event_views
from app.ui.pages import HtmlRoute, error_page, render, viewer_zone
from memory_types import MemoryType

PAGE = 50  # memories per page
LINKS = 200  # links listed on a memory's page
USERS = 50  # users offered on the timeline's first page

router = APIRouter(prefix=PATH, route_class=HtmlRoute, include_in_schema=False)
QueryFilters = Annotated[Filters, Query()]


def install(app: FastAPI) -> None:
    """Mount the browser: static files first, so the catch-all 404 page does not shadow them."""
    app.mount(f"{PATH}/static", StaticFiles(directory=Path(__file__).parent / "static"), name="ui-static")
    app.include_router(router)


def _page(request: Request, name: str, viewer: Viewer, filters: Filters | None = None, **context: object) -> Response:
    base = {"viewer": viewer, "filters": filters, "types": [t.value for t in MemoryType], "statuses": STATUSES}
    return render(request, name, {**base, **context})


@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse(f"{PATH}/search", status_code=303)


@router.get("/login")
def login_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> HTMLResponse:
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    runtime: RuntimeDep,
    key: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    target = safe_next(next)
    try:
        if from_another_site(request):
            raise ApiError(403, "sign in from this site's own sign-in page")
        if not key.strip():
            raise ApiError(401, "enter an API key")
        sign_in(request, runtime, key.strip())
    except ApiError as exc:
        return render(request, "login.html", {"next": target, "error": exc.message}, exc.status)
    response = RedirectResponse(target, status_code=303)
    set_key_cookie(request, response, key.strip())
    return response


@router.post("/logout")
def logout(viewer: CurrentViewer, token: Annotated[str, Form(max_length=200)] = "") -> RedirectResponse:
    check_token(viewer, token)
    response = RedirectResponse(f"{PATH}/login", status_code=303)
    clear_key_cookie(response)
    return response


@router.get("/search")
def search_page(request: Request, runtime: RuntimeDep, viewer: CurrentViewer, filters: QueryFilters) -> Response:
    """With query text: the API's hybrid search (ranked, with scores). Without: browse, newest first."""
    tenant_id, zone = viewer.principal.tenant_id, viewer_zone(request)
    if filters.q:
        k = runtime.settings.max_k if filters.narrows_results else PAGE
        found = run_search(runtime, viewer.principal, filters.search(k, zone), count_access=False)
        results = [r for r in found.results if filters.keeps(r, zone)][:PAGE]
        return _page(request, "search.html", viewer, filters, results=results, next_after=None)
    with tenant_session(runtime, viewer.principal) as session:
        rows, next_after = browsing.browse(session, tenant_id, filters.browse(zone), PAGE, filters.after)
        results = [memory_out(m) for m in rows]
    return _page(request, "search.html", viewer, filters, results=results, next_after=next_after)


@router.get("/timeline")
def timeline_page(request: Request, runtime: RuntimeDep, viewer: CurrentViewer, filters: QueryFilters) -> Response:
    """A user's memories by day, newest first; without a user, the users to choose from."""
    tenant_id, zone = viewer.principal.tenant_id, viewer_zone(request)
    with tenant_session(runtime, viewer.principal) as session:
        if filters.user_id is None:
            return _page(request, "timeline.html", viewer, filters, users=browsing.users(session, tenant_id, USERS))
        rows, next_after = browsing.browse(session, tenant_id, filters.browse(zone), PAGE, filters.after)
    days = [
        (day, [memory_out(m) for m in group])
        for day, group in itertools.groupby(rows, key=lambda m: (m.event_at or m.created_at).astimezone(zone).date())
    ]
    return _page(request, "timeline.html", viewer, filters, days=days, next_after=next_after)


@router.get("/memories/{memory_id}")
def memory_page(
    request: Request,
    runtime: RuntimeDep,
    viewer: CurrentViewer,
    memory_id: uuid.UUID,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    tenant_id = viewer.principal.tenant_id
    with tenant_session(runtime, viewer.principal) as session:
        memory = memory_store.get_memory(session, tenant_id, memory_id)
        events = memory_store.memory_history(session, tenant_id, memory_id)
        links = browsing.neighbours(session, tenant_id, memory_id, LINKS)
    return _page(
        request,
        "memory.html",
        viewer,
        memory=memory_out(memory),
        events=event_views(events),
        links=links,
        graph=layout(memory.id, memory.content, memory.type, memory.status, links),
        done=done if done in ("deleted", "restored") else None,
    )


@router.post("/memories/{memory_id}/{action}")
def change_memory(
    runtime: RuntimeDep,
    viewer: CurrentViewer,
    memory_id: uuid.UUID,
    action: Literal["delete", "restore"],
    token: Annotated[str, Form(max_length=200)] = "",
) -> RedirectResponse:
    """Soft delete (hidden from search, restorable; a hard delete stays with the API), or restore."""
    check_change(viewer, token)
    tenant_id = viewer.principal.tenant_id
    with tenant_session(runtime, viewer.principal) as session:
        if action == "delete":
            memory_store.delete_memory(session, tenant_id, memory_id, hard=False, actor=_actor(viewer))
        else:
            lifecycle.restore(session, tenant_id, memory_id, actor=_actor(viewer))
    return RedirectResponse(f"{PATH}/memories/{memory_id}?done={action}d", status_code=303)


def _actor(viewer: Viewer) -> str:
    """The audit log's actor: the key, as the API writes it, marked as a change made in the browser."""
    return f"key:{viewer.principal.key_id}:ui"


@router.get("/{rest:path}")
def unknown_page(request: Request, rest: str) -> HTMLResponse:
    return error_page(request, 404, f"there is no page {PATH}/{rest}")
