"""Tenants and API keys. Keys are shown once and stored only as SHA-256 hashes."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ApiKey, Tenant

KEY_PREFIX = "loci_"
Permission = Literal["read", "write", "admin"]
ALL_PERMISSIONS: tuple[Permission, ...] = get_args(Permission)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant every query is scoped to, and what the key may do."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID | None
    permissions: frozenset[str]

    @classmethod
    def local(cls, tenant_id: uuid.UUID) -> "Principal":
        """The service acting for a tenant by itself (the CLI on this machine, background jobs): no key to check."""
        return cls(tenant_id, None, frozenset(ALL_PERMISSIONS))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(id=uuid.uuid4(), name=name)
        session.add(tenant)
        session.flush()
    return tenant


def add_key(
    session: Session, tenant: Tenant, key: str, permissions: tuple[str, ...] = ALL_PERMISSIONS, name: str | None = None
) -> ApiKey:
    record = ApiKey(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        name=name,
        key_hash=hash_key(key),
        prefix=key[: len(KEY_PREFIX) + 4],
        permissions=list(permissions),
    )
    session.add(record)
    session.flush()
    return record


def create_tenant_with_key(session: Session, name: str) -> str:
    """Create (or reuse) a tenant and return a fresh admin key for it."""
    tenant = get_or_create_tenant(session, name)
    key = new_key()
    add_key(session, tenant, key, name="cli")
    return key


def ensure_bootstrap_key(session: Session, key: str) -> bool:
    """Register LOCI_BOOTSTRAP_API_KEY for tenant `default` when no key exists yet; True if it did."""
    if session.scalar(select(ApiKey.id).limit(1)) is not None:
        return False
    add_key(session, get_or_create_tenant(session, "default"), key, name="bootstrap")
    return True


def authenticate(session: Session, key: str) -> Principal | None:
    record = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
    if record is None:
        return None
    return Principal(record.tenant_id, record.id, frozenset(record.permissions))
