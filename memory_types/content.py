"""Content normalisation shared by dedup and storage."""

import hashlib
import unicodedata
from collections.abc import Mapping
from typing import Any


def content_hash(content: str) -> str:
    """Hash of the content modulo case, Unicode form and whitespace, so trivially re-typed text dedups."""
    normalised = " ".join(unicodedata.normalize("NFKC", content).casefold().split())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def indexed_text(content: str, attributes: Mapping[str, Any] | None) -> str:
    """The text a memory is embedded and indexed as: a message with its speaker ("Maria: I moved to
    Lisbon"), since questions name people and the words alone do not say who said them."""
    speaker = (attributes or {}).get("speaker")
    return f"{speaker}: {content}" if isinstance(speaker, str) and speaker else content
