"""GET /metrics: the runtime's metrics in the Prometheus text format (OpenMetrics when asked for).

Left out of the OpenAPI schema: it serves scrapers, not API clients. It takes no API key and no
rate-limit token, since scrapers poll it every few seconds and it reveals no tenant's data (only
cluster-wide aggregates); where it is exposed beyond the operator's network, LOCI_METRICS_TOKEN
makes it require `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials: ...}`).
"""

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import choose_encoder

from app.api.deps import RuntimeDep
from app.errors import ApiError

router = APIRouter(include_in_schema=False)


def _check_token(request: Request, token: str | None) -> None:
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "metrics need 'Authorization: Bearer <LOCI_METRICS_TOKEN>'")


@router.get("/metrics")
def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Sync on purpose: the scrape-time counts query the database, which must not block the event loop."""
    _check_token(request, runtime.settings.metrics_token)
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(content=encode(runtime.metrics.registry), media_type=content_type)
