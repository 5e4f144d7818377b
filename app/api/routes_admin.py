"""Admin routes: a tenant's API keys. Every route here needs a key with the `admin` permission."""

import uuid

from fastapi import APIRouter

from app.api.deps import Admin, RuntimeDep
from app.api.schemas import KeyCreate, KeyCreated, KeyList, KeyOut
from app.db.tenancy import tenant_session
from app.services import api_keys

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/keys", status_code=201, response_model=KeyCreated, summary="Create an API key (shown this once)")
def create_key(body: KeyCreate, runtime: RuntimeDep, principal: Admin) -> KeyCreated:
    with tenant_session(runtime, principal) as session:
        record, key = api_keys.create_key(session, principal.tenant_id, body.permissions, body.name)
    return KeyCreated(key_id=record.id, key=key)


@router.get("/keys", response_model=KeyList, summary="List the tenant's API keys (never the keys themselves)")
def list_keys(runtime: RuntimeDep, principal: Admin) -> KeyList:
    with tenant_session(runtime, principal) as session:
        return KeyList(
            keys=[
                KeyOut.model_validate(k, from_attributes=True) for k in api_keys.list_keys(session, principal.tenant_id)
            ]
        )


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke an API key (effective on its next request)")
def revoke_key(key_id: uuid.UUID, runtime: RuntimeDep, principal: Admin) -> KeyOut:
    with tenant_session(runtime, principal) as session:
        return KeyOut.model_validate(api_keys.revoke_key(session, principal.tenant_id, key_id), from_attributes=True)
