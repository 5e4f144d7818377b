"""The dense baseline with the real bundled model (a handful of texts keeps it fast)."""

import numpy as np

from eval.systems.dense import DenseSystem
from eval.units import Unit


def test_semantic_match_without_shared_words() -> None:
    dense = DenseSystem()
    dense.index(
        [
            Unit("pet", "s1", "We adopted a puppy from the shelter last weekend."),
            Unit("food", "s1", "I baked sourdough bread this morning."),
            Unit("trip", "s2", "Our flight to Tokyo leaves on Friday."),
            Unit("work", "s2", "My manager approved the quarterly budget."),
        ]
    )
    assert dense.search("Which dog did they get?", 4)[0] == "pet"
    assert dense.search("travel plans to Japan", 1) == ["trip"]
    vectors = dense.encode(["one", "two"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
