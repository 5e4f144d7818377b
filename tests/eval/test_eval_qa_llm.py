"""How the QA mode finds its LLM endpoint (the chat client itself is tested in tests/test_llm.py)."""

import pytest

from app.llm import LLMConfig
from eval.qa_llm import resolve_llm


def test_options_alone_configure_the_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCI_LLM_BASE_URL", "LOCI_LLM_MODEL", "LOCI_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_llm(None, None, None) is None
    assert resolve_llm("http://llm.test/v1/", "tiny", None) == LLMConfig("http://llm.test/v1", "tiny", None)
