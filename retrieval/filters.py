"""The WHERE clause every candidate generator shares: tenant, scope, type, event time, metadata, validity, trust."""

import json
from typing import Any

from retrieval.query import SearchQuery


def scope_filter(query: SearchQuery, alias: str) -> tuple[list[str], dict[str, Any]]:
    """The tenant and scope conditions alone, for tables that carry a memory's scope beside it (index keys)."""
    clauses = [f"{alias}.tenant_id = :tenant_id"]
    params: dict[str, Any] = {"tenant_id": query.tenant_id}
    for column in ("user_id", "agent_id", "session_id"):
        value = getattr(query, column)
        if value is not None:
            clauses.append(f"{alias}.{column} = :{column}")
            params[column] = value
    return clauses, params


def memory_filter(query: SearchQuery, alias: str = "m") -> tuple[str, dict[str, Any]]:
    """SQL conditions (joined with AND) and their bind parameters for one query."""
    a = alias
    clauses, params = scope_filter(query, a)
    if query.types:
        clauses.append(f"{a}.type = ANY(:types)")
        params["types"] = list(query.types)

    if query.as_of is not None:
        # Time travel: whatever was valid then, including facts superseded since.
        clauses.append(f"{a}.status IN ('active', 'superseded')")
        clauses.append(f"{a}.valid_from <= :as_of AND ({a}.valid_to IS NULL OR {a}.valid_to > :as_of)")
        params["as_of"] = query.as_of
    elif query.include_superseded:
        clauses.append(f"{a}.status IN ('active', 'superseded')")
    else:
        clauses.append(f"{a}.status = 'active'")
    clauses.append(f"({a}.expires_at IS NULL OR {a}.expires_at > now())")
    # A memory told without a time happened, as far as anyone knows, when it was stored.
    if query.event_after is not None:
        clauses.append(f"coalesce({a}.event_at, {a}.created_at) >= :event_after")
        params["event_after"] = query.event_after
    if query.event_before is not None:
        clauses.append(f"coalesce({a}.event_at, {a}.created_at) < :event_before")
        params["event_before"] = query.event_before
    if query.min_trust is not None:
        clauses.append(f"{a}.trust >= :min_trust")
        params["min_trust"] = query.min_trust
    if query.exclude_flagged:
        clauses.append(f"{a}.flags = '{{}}'")

    for i, (key, condition) in enumerate(sorted(query.metadata_filters.items())):
        values = condition["in"] if isinstance(condition, dict) else [condition]
        names = [f"meta_{i}_{j}" for j in range(len(values))]
        for name, value in zip(names, values, strict=True):
            params[name] = json.dumps({key: value})
        alternatives = " OR ".join(f"{a}.metadata @> CAST(:{name} AS jsonb)" for name in names) or "false"
        clauses.append(f"({alternatives})")
    return " AND ".join(clauses), params
