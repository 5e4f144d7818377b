"""The model's own weights exported to ONNX (fp32) and run with onnxruntime: the faster CPU path.

The export happens at start-up, in memory, from the transformer sentence-transformers already
loaded (~1 s), so there is no file to fetch, ship or keep in step with the weights. Pooling and
normalisation mirror the sentence-transformers pipeline (mean over the attention mask, then L2).

Why fp32 and not int8: on 2 cores onnxruntime's fused fp32 graph encodes conversation texts ~1.8x
faster than torch (880-930 against 480-520 texts a second) and a query in ~3.5 ms against ~8,
while agreeing with torch to cosine >= 0.99999 on every text tried (2,000 LoCoMo turns, short
chit-chat included). The int8 export we used before was slower than this (750-780 texts a second)
and agreed only to 0.997 on some real turns (docs/performance.md, "Ingest").

Any sentence-transformers model of the same shape (a transformer, mean pooling, normalisation)
exports the same way; all-mpnet-base-v2, the stronger opt-in, encodes a query in ~19 ms this way
against ~54 with torch (docs/retrieval.md).
"""

import io
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Varied lengths, topics and punctuation: what the start-up check compares both backends on.
PROBE_TEXTS = (
    "hi",
    "What did Ann cook for the party last Saturday?",
    "The quarterly report is due on Friday, 14 March 2025.",
    "I prefer window seats and vegetarian meals on long flights.",
    "To reset the router, hold the button for ten seconds, then wait for the green light.",
    "Bo's daughter started violin lessons in September and practises every evening after school.",
    "error: connection refused (ECONNREFUSED) at 127.0.0.1:5432",
    "Ich habe gestern einen Kuchen gebacken.",
    "def add(a, b):\n    return a + b",
    "We talked for hours about the trip to Porto, the food, the bridges and the rain that never stopped. "
    "Then the conversation drifted to work, the new manager, and whether anyone would take the job in Berlin.",
    "Allergic to penicillin; takes 20 mg of atorvastatin daily.",
    "🙂 thanks, that worked!",
    "thank you so much!",
    "lol",
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def mean_pooled(model: "SentenceTransformer") -> bool:
    """Whether the model is the pipeline this encoder computes: a transformer, mean pooling over the
    attention mask and, optionally, L2 normalisation (the encoder always normalises, as the service
    asks of torch too)."""
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(model)
    return (
        len(modules) in (2, 3)
        and isinstance(modules[0], Transformer)
        and isinstance(modules[1], Pooling)
        and modules[1].pooling_mode == "mean"
        and all(isinstance(m, Normalize) for m in modules[2:])
    )


def model_inputs(model: "SentenceTransformer") -> tuple[str, ...]:
    """The inputs the model's tokenizer feeds its transformer (MPNet takes no token type ids)."""
    names = set(model.tokenizer.model_input_names)
    return tuple(name for name in _INPUTS if name in names)


class _LastHiddenState(torch.nn.Module):
    """The transformer with positional inputs and one output, the form the ONNX exporter traces."""

    def __init__(self, transformer: torch.nn.Module, inputs: Sequence[str]) -> None:
        super().__init__()
        self.transformer = transformer
        self.inputs = tuple(inputs)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.transformer(**dict(zip(self.inputs, tensors, strict=True))).last_hidden_state


def export_onnx(transformer: torch.nn.Module, inputs: Sequence[str] = _INPUTS) -> bytes:
    """The transformer as an ONNX graph of the named inputs, with dynamic batch and sequence axes."""
    example = torch.ones((2, 8), dtype=torch.long)
    tensors = tuple(torch.zeros_like(example) if name == "token_type_ids" else example for name in inputs)
    graph = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's notes on shapes it treats as constants
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(transformer, inputs).eval(),
            tensors,
            graph,
            input_names=list(inputs),
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*inputs, "last_hidden_state")},
            opset_version=17,
            dynamo=False,
        )
    return graph.getvalue()


class OnnxEncoder:
    """Encodes texts with an exported transformer into L2-normalised float32 mean-pooled vectors."""

    def __init__(
        self,
        graph: bytes,
        tokenizer_json: str,
        max_tokens: int,
        threads: int = 0,
        padding: tuple[int, str] = (0, "[PAD]"),
    ) -> None:
        """`tokenizer_json` is the model's fast tokenizer serialised: this encoder sets truncation
        and padding (the model's pad id and token) on its own copy, leaving the torch model's
        tokenizer as it was."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.enable_truncation(max_tokens)
        pad_id, pad_token = padding
        self._tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)  # to the longest in each chunk
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # Spinning threads burn the cores Postgres and the other requests need: on 2 busy cores a
        # single query took 14-20 ms p50 with spinning and 4-8 ms without (docs/performance.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.dim: int = int(self._session.get_outputs()[0].shape[-1])

    @property
    def threads(self) -> int:
        """Threads a model call may use (0: onnxruntime's default, one per core)."""
        return int(self._session.get_session_options().intra_op_num_threads)

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """Chunks of similar length, so padding stays short (every pad token is computed)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_chunk([texts[i] for i in idx])
        return out

    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, {name: feed[name] for name in self._inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def agreement(reference: Callable[[list[str]], np.ndarray], candidate: Callable[[list[str]], np.ndarray]) -> float:
    """Lowest cosine between the two encoders' vectors over the probe texts (both L2-normalised)."""
    texts = list(PROBE_TEXTS)
    return float(np.min(np.sum(reference(texts) * candidate(texts), axis=1)))
