"""The Loci system adapter: what it sends to /v1/messages and how results map back to turns."""

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from eval.locomo import load_locomo
from eval.systems.loci import LociSystem
from eval.units import Unit


class RecordingClient:
    """Stands in for the MemoryClient calls the adapter makes; ids are handed out in input order like the server's."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.search_ids: list[str] = []
        self.searched_user = ""
        self.asked_at: datetime | None = None

    def add_messages(self, messages: list[dict[str, Any]], *, user_id: str, session_id: str) -> list[str]:
        self.calls.append({"messages": messages, "user_id": user_id, "session_id": session_id})
        first = sum(len(c["messages"]) for c in self.calls) - len(messages)
        return [f"m{first + i}" for i in range(len(messages))]

    def stats(self, *, user_id: str | None = None) -> Any:
        return SimpleNamespace(
            memories=sum(len(c["messages"]) for c in self.calls), pending_embeddings=0, pending_words=0
        )

    def search(
        self, query: str, *, user_id: str, k: int, types: list[str] | None = None, asked_at: datetime | None = None
    ) -> Any:
        self.searched_user, self.asked_at = user_id, asked_at
        return SimpleNamespace(results=[SimpleNamespace(id=i) for i in self.search_ids[:k]])


def test_one_request_per_session_with_speaker_date_and_caption(locomo_mini: Path) -> None:
    conversation = load_locomo(locomo_mini, "all").episodes[0]
    client = RecordingClient()
    LociSystem(client, consolidate=False).index(conversation.units)
    assert [c["session_id"] for c in client.calls] == ["session_1", "session_2"]
    assert len({c["user_id"] for c in client.calls}) == 1
    image = client.calls[0]["messages"][2]
    assert image == {
        "role": "user",
        "name": "Caroline",
        "content": "Look at this mural I found! [shares image: a photo of a rainbow mural on a brick wall]",
        "timestamp": datetime(2023, 5, 8, 13, 56, tzinfo=UTC),
    }


def test_results_map_back_to_turns_and_foreign_memories_keep_their_rank() -> None:
    client = RecordingClient()
    system = LociSystem(client, consolidate=False, batch_size=2)
    system.index([Unit(f"D1:{i}", "session_1", f"turn {i}") for i in range(1, 4)] + [Unit("D2:1", "session_2", "x")])
    assert [len(c["messages"]) for c in client.calls] == [2, 1, 1]  # batches never straddle sessions
    client.search_ids = ["m3", "summary-9", "m0"]
    assert system.search("q", 10) == ["D2:1", "memory:summary-9", "D1:1"]
    asked = datetime(2023, 7, 1, tzinfo=UTC)
    system.search("q", 10, asked)
    assert client.asked_at == asked  # relative periods count from the question's time, not the run's
    first_scope = client.searched_user
    system.index([Unit("D1:1", "session_1", "again")])
    system.search("q", 10)
    assert client.searched_user != first_scope  # every episode gets a fresh scope
