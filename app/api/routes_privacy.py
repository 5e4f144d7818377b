"""Privacy routes: what the service holds about one end user of the tenant."""

from typing import Annotated

from fastapi import APIRouter, Path

from app.api.deps import Reader, RuntimeDep
from app.api.schemas import Footprint, FootprintCounts
from app.db.tenancy import tenant_session
from app.services.privacy import user_footprint

router = APIRouter(prefix="/v1", tags=["privacy"])


@router.get("/users/{user_id:path}/footprint", response_model=Footprint, summary="Rows stored about one user")
def footprint(
    user_id: Annotated[str, Path(min_length=1, max_length=200)], runtime: RuntimeDep, principal: Reader
) -> Footprint:
    with tenant_session(runtime, principal) as session:
        counts = user_footprint(session, principal.tenant_id, user_id)
    return Footprint(user_id=user_id, counts=FootprintCounts(**counts))
