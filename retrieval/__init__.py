"""The search pipeline: candidate generation, fusion and scoring over the memories schema."""

from retrieval.pipeline import Hit, SearchQuery, search

__all__ = ["Hit", "SearchQuery", "search"]
