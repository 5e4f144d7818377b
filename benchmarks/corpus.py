"""Generated conversation-like texts, so benchmarks need no data set and are repeatable by seed."""

import random

_PEOPLE = ["Ann", "Bo", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kemi", "Luca"]
_VERBS = ["visited", "talked about", "cooked", "booked", "painted", "fixed", "read about", "lost", "found", "planned"]
_THINGS = [
    "a trip to Porto", "the old bicycle", "grandma's lasagne", "the garden shed", "a jazz concert",
    "the quarterly report", "a marathon in Berlin", "the new puppy", "a pottery class", "the leaking roof",
    "a birthday party", "the job interview", "a camping weekend", "the violin lessons", "a charity run",
]  # fmt: skip
_WHEN = ["yesterday", "last week", "on Saturday", "this morning", "in May", "after work", "two days ago"]
_FEEL = ["and loved it", "but it rained", "with friends", "for the first time", "again", "and felt proud"]


def conversation_texts(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(_PEOPLE)} {rng.choice(_VERBS)} {rng.choice(_THINGS)} {rng.choice(_WHEN)} {rng.choice(_FEEL)}."
        for _ in range(count)
    ]


def queries(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [f"what did {rng.choice(_PEOPLE)} do with {rng.choice(_THINGS)}?" for _ in range(count)]


def distinct_queries(count: int, seed: int = 13) -> list[str]:
    """Questions that never repeat (up to 1260), so a query-embedding cache cannot flatter latency."""
    combos = [(p, t, w) for p in _PEOPLE for t in _THINGS for w in _WHEN]
    if count > len(combos):
        raise ValueError(f"at most {len(combos)} distinct queries")
    rng = random.Random(seed)
    return [f"what did {p} do with {t} {w}?" for p, t, w in rng.sample(combos, count)]
