"""Vectors go to Postgres in pgvector's binary format and arrive exactly as sent."""

import threading
import time
import uuid
from concurrent.futures import Future

import numpy as np
import pytest
from sqlalchemy import text

from app.runtime import Runtime
from retrieval.query import SearchQuery
from retrieval.vector_param import BinaryVector, unpack_vectors


def _round_trip(runtime: Runtime, vector: np.ndarray) -> np.ndarray:
    with runtime.engine.connect() as conn:
        stored = conn.execute(text("SELECT CAST(CAST(:v AS vector) AS real[])"), {"v": BinaryVector(vector)}).scalar()
    return np.asarray(stored, dtype=np.float32)


def test_a_vector_arrives_bit_for_bit(runtime: Runtime) -> None:
    rng = np.random.default_rng(5)
    vector = (rng.standard_normal(384) * 10.0 ** rng.integers(-30, 30, 384)).astype(np.float32)
    assert np.array_equal(_round_trip(runtime, vector), vector)


def test_vectors_read_in_the_binary_format_unpack_exactly(runtime: Runtime) -> None:
    vectors = np.random.default_rng(9).standard_normal((3, 384)).astype(np.float32)
    with runtime.engine.connect() as conn:
        packed = [
            conn.execute(text("SELECT vector_send(CAST(:v AS vector))"), {"v": BinaryVector(v)}).scalar()
            for v in vectors
        ]
    unpacked = unpack_vectors([bytes(p) for p in packed])
    assert unpacked.dtype == np.float32 and np.array_equal(unpacked, vectors)


def test_lists_and_other_float_widths_are_packed_as_float32(runtime: Runtime) -> None:
    assert np.array_equal(_round_trip(runtime, np.array([0.5, -2.0, 3.25])), np.array([0.5, -2.0, 3.25], np.float32))
    assert np.array_equal(_round_trip(runtime, [1.0, 0.0]), np.array([1.0, 0.0], np.float32))


def test_only_one_dimensional_vectors_are_packed() -> None:
    with pytest.raises(ValueError, match="one dimension"):
        BinaryVector(np.zeros((2, 3), np.float32))


def test_a_query_waiting_for_its_vector_does_not_hold_up_another() -> None:
    """Under load, searches wait for their query vectors side by side, not one after another."""
    waiting: Future[np.ndarray] = Future()
    slow = SearchQuery(tenant_id=uuid.uuid4(), text="slow", vector=waiting)
    ready = SearchQuery(tenant_id=uuid.uuid4(), text="ready", vector=np.ones(4, np.float32))
    blocked = threading.Thread(target=lambda: slow.embedding_param, daemon=True)
    blocked.start()
    time.sleep(0.2)  # the slow query is now waiting inside embedding_param
    packed: list[BinaryVector] = []
    other = threading.Thread(target=lambda: packed.append(ready.embedding_param), daemon=True)
    other.start()
    other.join(timeout=5)
    assert packed and packed[0].data == BinaryVector(np.ones(4, np.float32)).data
    waiting.set_result(np.zeros(4, np.float32))
    blocked.join(timeout=5)
    assert not blocked.is_alive() and slow.embedding_param.data == BinaryVector(np.zeros(4)).data
