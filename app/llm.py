"""Optional LLM access: any OpenAI-compatible chat endpoint, never required.

Consolidation asks for JSON that must match a schema. Models break JSON in predictable ways
(code fences, prose around the object, trailing commas), so replies are repaired first and, when
still invalid, the model is asked again with the validation error, a bounded number of times.
"""

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)


class LLMError(RuntimeError):
    """The endpoint failed or never produced valid output; callers fall back to the LLM-free path."""


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def repair_json(reply: str) -> Any:
    """Parse a model's JSON reply, tolerating fences, surrounding prose and trailing commas."""
    text = _FENCE.sub("", reply.strip())
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON object or array in the reply")
    end = max(text.rfind("}"), text.rfind("]"))
    candidate = _TRAILING_COMMA.sub(r"\1", text[start : end + 1])
    return json.loads(candidate)


class LLMClient:
    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = httpx.Client(base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout)

    def close(self) -> None:
        self._http.close()

    def chat(self, messages: list[dict[str, str]], attempts: int = 3, **extra: Any) -> str:
        """One completion, retried with backoff on transport errors, 429 and 5xx; other errors are final."""
        body = {"model": self.config.model, "messages": messages, "temperature": 0, **extra}
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._http.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                if last:
                    raise LLMError(f"chat completion failed: {exc}") from exc
            else:
                retryable = response.status_code == 429 or response.status_code >= 500
                if response.is_error and (last or not retryable):
                    raise LLMError(f"chat completion failed: HTTP {response.status_code}")
                if not response.is_error:
                    try:
                        return str(response.json()["choices"][0]["message"]["content"])
                    except (KeyError, IndexError, TypeError, ValueError) as exc:
                        raise LLMError(f"unexpected chat completion body: {exc}") from exc
            time.sleep(0.5 * 2**attempt)
        raise LLMError("no attempts were made")

    def complete_json(self, prompt: str, model: type[T], repairs: int = 2) -> T:
        """A reply validated against `model`, asking again with the error when it does not fit."""
        schema = {"name": model.__name__, "schema": model.model_json_schema(), "strict": False}
        messages = [{"role": "user", "content": prompt}]
        for attempt in range(repairs + 1):
            reply = self.chat(messages, response_format={"type": "json_schema", "json_schema": schema})
            try:
                return model.model_validate(repair_json(reply))
            except (ValueError, ValidationError) as exc:
                log.info("llm reply did not validate", extra={"attempt": attempt})
                messages += [
                    {"role": "assistant", "content": reply},
                    {
                        "role": "user",
                        "content": f"That was not valid JSON for the schema ({exc}). Reply with the JSON only.",
                    },
                ]
        raise LLMError(f"no valid {model.__name__} after {repairs + 1} replies")


def llm_config(base_url: str | None, model: str | None, api_key: str | None, timeout: float = 60.0) -> LLMConfig | None:
    """The configured endpoint, or None when there is none: every caller has an LLM-free path."""
    return LLMConfig(base_url, model, api_key, timeout) if base_url and model else None
