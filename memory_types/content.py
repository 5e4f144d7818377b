"""Content normalisation shared by dedup and storage."""

import hashlib
import unicodedata


def content_hash(content: str) -> str:
    """Hash of the content modulo case, Unicode form and whitespace, so trivially re-typed text dedups."""
    normalised = " ".join(unicodedata.normalize("NFKC", content).casefold().split())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()
