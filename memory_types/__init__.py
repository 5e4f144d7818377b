"""The record types of Loci and their rules. Imports no web framework and no database session."""

from memory_types.attributes import (
    ATTRIBUTE_SCHEMAS,
    EpisodicAttributes,
    MemoryType,
    ProceduralAttributes,
    SemanticAttributes,
    validate_attributes,
)
from memory_types.content import content_hash

__all__ = [
    "ATTRIBUTE_SCHEMAS",
    "EpisodicAttributes",
    "MemoryType",
    "ProceduralAttributes",
    "SemanticAttributes",
    "content_hash",
    "validate_attributes",
]
