"""Schema fuzzing: schemathesis generates valid and invalid requests for every operation in the
app's own OpenAPI document and checks that nothing answers 5xx and every answer (status, content
type, headers, body) is one the schema declares. Each operation runs with a valid admin key, then
with bad keys.

A bounded, derandomised profile runs here (one test per operation, so a failure names it);
docs/security.md has the command for a longer run.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from app.runtime import Runtime
from app.services.tenants import create_tenant_with_key
from app.settings import Settings

schemathesis.serializer.alias("application/x-ndjson", "text/plain")  # POST /v1/admin/import: JSON Lines text

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
PROFILE = settings(
    max_examples=5, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
BAD_KEYS = ({}, {"Authorization": "Bearer loci_not_a_key"}, {"Authorization": "Basic Zm9vOmJhcg=="})


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation; building the app reads no database, so collection is cheap."""
    spec = create_app(Settings()).openapi()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


@pytest.fixture(scope="module")
def api_schema(app_with):  # type: ignore[no-untyped-def]
    """The schema served by an app without a rate limit: the fuzzer's bursts must reach the handlers."""
    return schemathesis.openapi.from_asgi("/openapi.json", app_with(rate_limit_per_s=0))


@pytest.fixture(scope="module")
def fuzz_key(runtime: Runtime) -> str:
    with runtime.sessions.begin() as session:
        return create_tenant_with_key(session, "fuzz")


@pytest.mark.parametrize(("method", "path"), _operations())
def test_operation_conforms_to_its_schema(api_schema, fuzz_key: str, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    operation = api_schema[path][method]
    auth = {"Authorization": f"Bearer {fuzz_key}"}

    @PROFILE
    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def valid_requests(case) -> None:  # type: ignore[no-untyped-def]
        case.call_and_validate(headers=auth, checks=CONFORMANCE)

    @PROFILE
    @given(case=operation.as_strategy(GenerationMode.NEGATIVE))
    def invalid_requests(case) -> None:  # type: ignore[no-untyped-def]
        case.call_and_validate(headers=auth, checks=[*CONFORMANCE, negative_data_rejection])

    @settings(PROFILE, max_examples=2)
    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def bad_keys(case) -> None:  # type: ignore[no-untyped-def]
        for headers in BAD_KEYS:
            response = case.call_and_validate(headers=headers, checks=CONFORMANCE)
            if path.startswith("/v1"):
                assert response.status_code in (400, 401, 413, 422), response.text

    valid_requests()
    try:
        invalid_requests()
    except Unsatisfiable:
        pass  # nothing about this operation can be invalid (no input, or an unconstrained string)
    bad_keys()
