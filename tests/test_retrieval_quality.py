"""Retrieval quality on a small hand-written conversation (not LoCoMo): the levers of docs/retrieval.md
must keep finding the turn that answers each question, through the real service and model.

The questions are written the way users ask: they name a person, paraphrase, or ask about what a
short reply confirmed, so plain cosine or word overlap alone misses several of them.
"""

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

SESSIONS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "2024-03-02T10:00:00Z",
        [
            ("Priya", "Morning! How was the weekend?"),
            ("Tom", "Busy. I finally started cello lessons on Saturday."),
            ("Priya", "No way, which teacher?"),
            ("Tom", "An old jazz bassist called Marek who teaches in his garage."),
            ("Priya", "I spent Sunday repotting my fig tree, it had outgrown the balcony pot."),
            ("Tom", "Is that the one your grandmother gave you?"),
            ("Priya", "Yes, she brought it back from Izmir years ago."),
            ("Tom", "Amazing that it survived the move."),
        ],
    ),
    (
        "2024-04-14T18:30:00Z",
        [
            ("Tom", "Did you end up booking the trip?"),
            ("Priya", "I did. Ten days in Porto in June."),
            ("Tom", "Are you going alone?"),
            ("Priya", "With my sister Anjali, she's a tile restorer so she is very excited about the azulejos."),
            ("Tom", "My dog Biscuit ate one of my running shoes yesterday."),
            ("Priya", "Oh no, the new ones?"),
            ("Tom", "Yep, the marathon pair. Back to the shop."),
            ("Priya", "Which marathon are you training for?"),
            ("Tom", "Rotterdam, in October."),
        ],
    ),
    (
        "2024-06-28T20:15:00Z",
        [
            ("Tom", "Welcome back! How was Portugal?"),
            ("Priya", "Wonderful, but Anjali sprained her ankle on the second day."),
            ("Tom", "Ouch. Did she manage to see the tiles?"),
            ("Priya", "Mostly from a taxi, honestly."),
            ("Tom", "Marek says I'm ready to play in a recital next month."),
            ("Priya", "That's fast progress for four months."),
            ("Tom", "I practise every morning before work, forty minutes."),
            ("Priya", "I switched jobs by the way, I'm at a bakery cooperative now."),
            ("Tom", "Doing what?"),
            ("Priya", "Running their accounts, and I get to take home the sourdough."),
        ],
    ),
]

# (question, (session index, turn index) of the turn that answers it)
QUESTIONS: list[tuple[str, tuple[int, int]]] = [
    ("What instrument is Tom learning?", (0, 1)),
    ("Who teaches Tom?", (0, 3)),
    ("What did Priya do on Sunday?", (0, 4)),
    ("Where did Priya's grandmother bring the fig tree from?", (0, 6)),
    ("Where is Priya going on holiday?", (1, 1)),
    ("What does Anjali do for a living?", (1, 3)),
    ("What happened to Tom's running shoes?", (1, 4)),
    ("Which city's marathon is Tom running?", (1, 8)),
    ("How did Anjali get hurt?", (2, 1)),
    ("How did Anjali see the tiles?", (2, 3)),
    ("How often does Tom practise?", (2, 6)),
    ("Where does Priya work now?", (2, 7)),
    ("What is Priya's job at the cooperative?", (2, 9)),
]


def _ingest(client: TestClient, headers: dict[str, str], user_id: str) -> list[list[str]]:
    ids = []
    for number, (timestamp, turns) in enumerate(SESSIONS):
        messages = [{"role": "user", "name": name, "content": text, "timestamp": timestamp} for name, text in turns]
        response = client.post(
            "/v1/messages",
            json={"user_id": user_id, "session_id": f"s{number}", "messages": messages},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["ids"])
    return ids


def _ranks(client: TestClient, headers: dict[str, str], user_id: str, ids: list[list[str]], k: int) -> list[int | None]:
    ranks = []
    for question, (session, turn) in QUESTIONS:
        body = {"query": question, "user_id": user_id, "k": k, "types": ["episodic"]}
        results = client.post("/v1/search", json=body, headers=headers).json()["results"]
        found = [r["id"] for r in results]
        wanted = ids[session][turn]
        ranks.append(found.index(wanted) + 1 if wanted in found else None)
    return ranks


def test_default_retrieval_finds_the_answering_turn(client: TestClient, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    ids = _ingest(client, headers, "priya-and-tom")
    ranks = _ranks(client, headers, "priya-and-tom", ids, k=5)
    recall_at_5 = sum(r is not None for r in ranks) / len(ranks)
    mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
    # Measured: every turn in the top 5, MRR 0.72 (0.64 with LOCI_LENGTH_WEIGHT=0); Postgres full text
    # fused by rank (the pipeline before the BM25 index) gets 0.69 and 0.63.
    assert recall_at_5 >= 0.9, list(zip([q for q, _ in QUESTIONS], ranks, strict=True))
    assert mrr >= 0.6, list(zip([q for q, _ in QUESTIONS], ranks, strict=True))


CHILI = [f"I cooked chili for the neighbours today, with {extra}." for extra in ("beans", "corn", "rice")]
"""Tom's three near-identical turns: text and meaning alone rank them the same for every question."""


def _tell_chili(client: TestClient, headers: dict[str, str], user_id: str, times: list[str]) -> list[str]:
    """CHILI told at the given times, each in a session of its own with a reply; the turns' ids."""
    ids = []
    for number, (timestamp, text) in enumerate(zip(times, CHILI, strict=True)):
        messages = [
            {"role": "user", "name": "Tom", "content": text, "timestamp": timestamp},
            {
                "role": "user",
                "name": "Priya",
                "content": "Lucky neighbours! How is the garden?",
                "timestamp": timestamp,
            },
        ]
        body = {"user_id": user_id, "session_id": f"c{number}", "messages": messages}
        response = client.post("/v1/messages", json=body, headers=headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["ids"][0])
    return ids


def _assert_first_hits(
    client: TestClient, headers: dict[str, str], asked: list[tuple[str, str]], **body: object
) -> None:
    """Each (question, memory id): the memory is the question's top hit."""
    for question, wanted in asked:
        response = client.post("/v1/search", json={"query": question, "k": 3, **body}, headers=headers)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results[0]["id"] == wanted, (question, [r["content"] for r in results])


def test_a_period_in_the_question_picks_the_turn_of_that_time(client: TestClient, api_key: str) -> None:
    """Three near-identical turns months apart: only the time view can tell which one a question
    naming the month (or the day) asks about."""
    headers = {"Authorization": f"Bearer {api_key}"}
    ids = _tell_chili(
        client, headers, "chili", ["2024-03-10T19:00:00Z", "2024-05-05T19:00:00Z", "2024-07-21T19:00:00Z"]
    )
    asked = [
        ("What did Tom cook for the neighbours in March 2024?", ids[0]),
        ("What did Tom cook for the neighbours on May 5, 2024?", ids[1]),
        ("What did Tom cook for the neighbours in July?", ids[2]),
    ]
    _assert_first_hits(client, headers, asked, user_id="chili")


def test_a_relative_period_counts_back_from_when_the_question_is_asked(client: TestClient, api_key: str) -> None:
    """ "Last week", "last month", "last year" from `asked_at`, and "yesterday" from the time of the
    request when the search gives none."""
    headers = {"Authorization": f"Bearer {api_key}"}
    ids = _tell_chili(client, headers, "chili-then", ["2023-07-12T19:00Z", "2024-06-12T19:00Z", "2024-07-10T19:00Z"])
    asked = [
        ("What did Tom cook for the neighbours last year?", ids[0]),
        ("What did Tom cook for the neighbours last month?", ids[1]),
        ("What did Tom cook for the neighbours last week?", ids[2]),
    ]
    _assert_first_hits(client, headers, asked, user_id="chili-then", asked_at="2024-07-17T15:00:00Z")

    now = datetime.now(UTC)
    ids = _tell_chili(client, headers, "chili-now", [(now - timedelta(days=days)).isoformat() for days in (40, 1, 12)])
    _assert_first_hits(client, headers, [("What did Tom cook yesterday?", ids[1])], user_id="chili-now")

    bad = client.post("/v1/search", json={"query": "chili", "asked_at": "soon"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error", bad.text


def test_the_askers_time_zone_decides_which_days_a_relative_period_holds(client: TestClient, api_key: str) -> None:
    """Asked at 11 p.m. on 17 July in Los Angeles (06:00 UTC on the 18th), "yesterday" (with today)
    is the 16th and 17th there: the turn told at 8 p.m. on the 17th, LA time, is in it, and the one
    told at 8 p.m. on the 15th, LA time (03:00 UTC on the 16th), is not. Read as UTC, the same naive
    `asked_at` makes it the other way round."""
    headers = {"Authorization": f"Bearer {api_key}"}
    times = ["2024-07-18T03:00:00Z", "2024-07-16T03:00:00Z", "2024-06-01T12:00:00Z"]
    ids = _tell_chili(client, headers, "chili-zoned", times)
    question = "What did Tom cook yesterday?"
    los_angeles = {"user_id": "chili-zoned", "timezone": "America/Los_Angeles"}
    _assert_first_hits(client, headers, [(question, ids[0])], asked_at="2024-07-17T23:00:00", **los_angeles)
    _assert_first_hits(client, headers, [(question, ids[0])], asked_at="2024-07-18T06:00:00Z", **los_angeles)
    _assert_first_hits(client, headers, [(question, ids[1])], user_id="chili-zoned", asked_at="2024-07-17T23:00:00")

    for zone in ("Mars/Olympus_Mons", "America", "../../etc/passwd", "utc", "\\u0000", "\\ud800"):
        body = f'{{"query": "chili", "timezone": "{zone}"}}'  # raw JSON: a lone surrogate is not UTF-8
        bad = client.post("/v1/search", content=body, headers={**headers, "Content-Type": "application/json"})
        assert bad.status_code == 422, (zone, bad.text)
        error = bad.json()["error"]
        assert error["code"] == "validation_error" and "timezone" in bad.text, bad.text


def test_periods_at_the_ends_of_the_calendar_are_no_server_error(client: TestClient, api_key: str) -> None:
    """Years 1 and 9999 are valid JSON times; a period counted from them, or a zone's local time
    of them, falls off the calendar. The search goes on without the period."""
    headers = {"Authorization": f"Bearer {api_key}"}
    _tell_chili(client, headers, "chili-ends", ["0001-01-01T00:00:00Z", "2024-06-30T12:00:00Z", "9999-12-31T23:59:59Z"])
    for asked_at in (
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "0001-01-01T10:00:00",
    ):  # naive: in year 1 in UTC from each zone
        for zone in (None, "Asia/Tokyo", "America/Denver"):
            for question in ("What did Tom cook 999 years ago?", "What did Tom cook last week?", "Chili in June?"):
                body = {"query": question, "user_id": "chili-ends", "asked_at": asked_at, "timezone": zone}
                response = client.post("/v1/search", json=body, headers=headers)
                assert response.status_code == 200, (body, response.text)
                assert response.json()["results"], body


def test_in_a_small_scope_a_named_period_outweighs_a_hair_of_cosine(client: TestClient, api_key: str) -> None:
    """Two memories: the brakes one is a little closer to "repair" by cosine (0.60 against 0.57).
    Standardised over two candidates that hair was a whole standard deviation, as much as the
    period view's difference, and "last month" tied; the cosines' least spread fixes it."""
    headers = {"Authorization": f"Bearer {api_key}"}
    ids = []
    for day, text in (
        ("2024-07-10", "I repaired the bike brakes today"),
        ("2024-06-12", "I repaired the bike chain today"),
    ):
        message = {"role": "user", "name": "Ana", "content": text, "timestamp": f"{day}T18:00:00Z"}
        body = {"user_id": "bikes", "session_id": day, "messages": [message]}
        response = client.post("/v1/messages", json=body, headers=headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["ids"][0])
    asked = [("What did Ana repair last week?", ids[0]), ("What did Ana repair last month?", ids[1])]
    _assert_first_hits(client, headers, asked, user_id="bikes", asked_at="2024-07-17T09:00:00Z")


def test_a_question_asking_when_prefers_the_turn_that_says_when(client: TestClient, api_key: str) -> None:
    """Of two turns about the sister's visits, the one sharing more of the question's words
    ("visits") does not say when; the one that does ("last weekend") answers "When...?", and the
    when view puts it first (without it, the other turn leads by about two standard deviations)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    sessions = [
        [("Tom", "My sister visits often and we always bake bread together."), ("Priya", "Sounds cosy!")],
        [("Priya", "How was your weekend?"), ("Tom", "My sister came over last weekend, we baked all afternoon.")],
    ]
    ids = []
    for number, turns in enumerate(sessions):
        messages = [{"role": "user", "name": name, "content": text} for name, text in turns]
        body = {"user_id": "visits", "session_id": f"v{number}", "messages": messages}
        response = client.post("/v1/messages", json=body, headers=headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["ids"])
    body = {"query": "When did Tom's sister visit him?", "user_id": "visits", "k": 3}
    results = client.post("/v1/search", json=body, headers=headers).json()["results"]
    assert results[0]["id"] == ids[1][1], [r["content"] for r in results]


def test_a_telling_turn_outranks_the_one_line_reply_beside_it(client: TestClient, api_key: str) -> None:
    """A short reply ("Looks like it, yes.") sits next to the question it answers and shares its
    context; the long turn after it holds what is asked. The length view puts the long turn first;
    without it (LOCI_LENGTH_WEIGHT=0) the reply, or the question itself, leads."""
    headers = {"Authorization": f"Bearer {api_key}"}
    talks = {
        "aquarium": (
            "What happened at Ben's aquarium interview?",
            [
                ("Ana", "How did the job interview at the aquarium go?"),
                ("Ben", "Really well I think."),
                (
                    "Ben",
                    "They asked me to design a feeding schedule for the jellyfish tanks on the spot, and the head "
                    "curator said she'd call me Friday.",
                ),
                ("Ana", "Fingers crossed!"),
            ],
        ),
        "moving": (
            "Where is Ben moving to?",
            [
                ("Ana", "So are you moving out of the city after all?"),
                ("Ben", "Looks like it, yes."),
                (
                    "Ben",
                    "We put an offer on a stone cottage near the coast with a big vegetable garden, twenty minutes "
                    "from Lena's school.",
                ),
                ("Ana", "That sounds lovely."),
            ],
        ),
    }
    for user_id, (question, turns) in talks.items():
        messages = [{"role": "user", "name": name, "content": text} for name, text in turns]
        response = client.post(
            "/v1/messages", json={"user_id": user_id, "session_id": "s", "messages": messages}, headers=headers
        )
        assert response.status_code == 201, response.text
        _assert_first_hits(client, headers, [(question, response.json()["ids"][2])], user_id=user_id)
