"""How the QA mode finds its LLM endpoint (the chat client itself is tested in tests/test_llm.py)."""

import pytest

from app.llm import LLMConfig
from eval.qa_llm import resolve_llm


def test_options_alone_configure_the_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCI_LLM_BASE_URL", "LOCI_LLM_MODEL", "LOCI_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_llm(None, None, None) is None
    assert resolve_llm("http://llm.test/v1/", "tiny", None) == LLMConfig("http://llm.test/v1", "tiny", None)


def test_judge_asks_the_llm_except_for_adversarial_questions() -> None:
    from fastapi import FastAPI, Request

    from app.llm import LLMClient
    from app.local_server import serve_in_thread
    from eval.qa_llm import judge
    from eval.units import Question

    prompts: list[str] = []
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict:  # type: ignore[type-arg]
        prompt = (await request.json())["messages"][0]["content"]
        prompts.append(prompt)
        verdict = "CORRECT" if "Generated answer: 7 May" in prompt else "WRONG, the dates differ"
        return {"choices": [{"message": {"content": verdict}}]}

    with serve_in_thread(app) as url:
        client = LLMClient(LLMConfig(f"{url}/v1", "judge"))
        dated = Question(
            id="q1", text="When did she go?", answer="7 May 2023", category="2", gold_units=(), gold_sessions=()
        )
        assert judge(client, dated, "7 May, 2023") == 1.0
        assert judge(client, dated, "June 2023") == 0.0
        adversarial = Question(id="q2", text="Why?", answer="", category="5", gold_units=(), gold_sessions=())
        assert judge(client, adversarial, "Not mentioned in the conversation.") == 1.0
        assert judge(client, adversarial, "Because of the rain.") == 0.0
        client.close()
    assert len(prompts) == 2 and "Gold answer: 7 May 2023" in prompts[0]
