"""A tenant's API keys as its admins manage them (API and CLI): create, list, revoke.

Keys are shown once, at creation; afterwards only their id, name, display prefix, permissions and
dates are readable. Revocation takes effect on the next request: authentication reads the key's
row every time, with no cache to outlive it.
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ApiKey, Tenant
from app.errors import not_found
from app.services.tenants import Permission, add_key, new_key


def create_key(
    session: Session, tenant_id: uuid.UUID, permissions: list[Permission], name: str | None
) -> tuple[ApiKey, str]:
    """A new key for the tenant: (its record, the key itself)."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise not_found("tenant")
    key = new_key()
    ordered = tuple(dict.fromkeys(permissions))
    return add_key(session, tenant, key, ordered, name), key


def list_keys(session: Session, tenant_id: uuid.UUID) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)))


def revoke_key(session: Session, tenant_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    """Revoke one of the tenant's keys (again: a no-op); another tenant's key is not found."""
    record = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id).with_for_update())
    if record is None:
        raise not_found("API key")
    if record.revoked_at is None:
        record.revoked_at = datetime.now(UTC)
        session.flush()
    return record
