"""LLM-free extraction from episodes: sentences, subject-predicate-object facts, keywords, and
extractive summaries. Heuristic on purpose: it runs everywhere, offline, in milliseconds, and an
optional LLM path (app/llm.py) can do better where one is configured."""

import re
from dataclasses import dataclass

import numpy as np

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+")

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves yeah yes oh wow really thanks thank hey hi hello also got get getting going
    go gonna lot lots like just well much many one way thing things something anything know think feel
    sure glad great good awesome amazing cool nice totally always never ever still even i'm i've i'll i'd
    it's that's don't didn't can't you're we're they're""".split()
)


@dataclass(frozen=True)
class Fact:
    subject: str
    predicate: str
    object: str
    sentence: str

    @property
    def text(self) -> str:
        return f"{self.subject} {self.predicate} {self.object}"


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if len(s.strip()) > 1]


# First-person statements carry most durable facts in conversations; each pattern maps to a
# predicate. Order matters: the first match in a sentence wins.
_FACT_PATTERNS: list[tuple[re.Pattern[str], str | None]] = [
    (re.compile(r"\bI(?:'m| am) (?:a |an )?(?P<obj>(?:[a-z]+ )?(?:nurse|teacher|engineer|doctor|student|artist|writer|developer|designer|lawyer|chef|parent|mother|father|counselor|musician|painter)\b.*)", re.I), "works as"),
    (re.compile(r"\bI (?:live|am living|'m living) in (?P<obj>.+)", re.I), "lives in"),
    (re.compile(r"\bI (?:moved|relocated) to (?P<obj>.+)", re.I), "lives in"),
    (re.compile(r"\bI work (?:at|for|in) (?P<obj>.+)", re.I), "works at"),
    (re.compile(r"\bmy (?P<pred>[a-z]+(?: [a-z]+)?) (?:is|are|was) (?P<obj>.+)", re.I), None),
    (re.compile(r"\bI (?P<pred>love|like|enjoy|hate|prefer|adore|dislike) (?P<obj>.+)", re.I), None),
    (re.compile(r"\bI(?:'ve| have) (?:been |started |begun )?(?P<pred>learning|playing|practicing|painting|running|volunteering|studying|reading|writing|collecting) (?P<obj>.+)", re.I), None),
    (re.compile(r"\bI (?P<pred>adopted|bought|visited|joined|started|finished|won|lost|met|went to|signed up for|got) (?P<obj>.+)", re.I), None),
    (re.compile(r"\bI (?:have|'ve got) (?:a |an |two |three )?(?P<obj>(?:dog|cat|kid|child|son|daughter|husband|wife|partner|boyfriend|girlfriend|brother|sister)s?\b.*)", re.I), "has"),
    (re.compile(r"\bI(?:'m| am) (?P<pred>allergic to|married to|engaged to|afraid of|interested in|passionate about) (?P<obj>.+)", re.I), None),
]  # fmt: skip


def _clean_object(text: str) -> str:
    text = re.split(r"[,;:!?.]| but | because | and then ", text, maxsplit=1)[0]
    return " ".join(text.split()[:12]).strip(" '\"")


def extract_facts(text: str, speaker: str | None) -> list[Fact]:
    """Subject-predicate-object facts from first-person sentences; the speaker is the subject."""
    subject = speaker or "user"
    facts: list[Fact] = []
    for sentence in split_sentences(text):
        if sentence.endswith("?"):
            continue
        for pattern, predicate in _FACT_PATTERNS:
            match = pattern.search(sentence)
            if not match:
                continue
            obj = _clean_object(match.group("obj"))
            groups = match.groupdict()
            pred = predicate or groups.get("pred", "")
            if groups.get("pred") and predicate is None and pattern.pattern.startswith(r"\bmy"):
                pred = f"{pred.lower()} is"
            if obj and len(obj) > 1:
                facts.append(Fact(subject, pred.lower(), obj, sentence))
            break
    return facts


def keywords(text: str, limit: int = 8) -> list[str]:
    """Content words in order of first appearance, names (capitalised mid-sentence) first."""
    names: list[str] = []
    words: list[str] = []
    for i, match in enumerate(_WORD.finditer(text)):
        word = match.group(0).strip("'-")
        lower = word.lower()
        if lower in STOP_WORDS or len(lower) < 3:
            continue
        bucket = names if word[0].isupper() and i > 0 else words
        if lower not in {w.lower() for w in names + words}:
            bucket.append(word)
    return (names + words)[:limit]


def extractive_summary(sentences: list[str], vectors: np.ndarray, max_sentences: int = 4) -> list[str]:
    """The sentences closest to the centroid of all of them, kept in their original order: a cheap
    summary that covers what a session was mostly about."""
    if len(sentences) <= max_sentences:
        return list(sentences)
    centroid = vectors.mean(axis=0)
    scores = vectors @ centroid
    chosen = sorted(np.argsort(-scores)[:max_sentences].tolist())
    return [sentences[i] for i in chosen]
