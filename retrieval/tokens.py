"""Words as the lexical index counts them: lowercase alphanumeric runs, minus English stop words,
Porter-stemmed (nltk's stemmer needs no data download), so "moved", "moving" and "moves" meet."""

import re
from functools import cache, lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nltk.stem import PorterStemmer

# nltk's English stop-word list, inlined because nltk's copy needs a corpus download.
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
    her hers herself it its itself they them their theirs themselves what which who whom this that
    these those am is are was were be been being have has had having do does did doing a an the and
    but if or because as until while of at by for with about against between into through during
    before after above below to from up down in out on off over under again further then once here
    there when where why how all any both each few more most other some such no nor not only own
    same so than too very s t can will just don should now d ll m o re ve y ain aren couldn didn
    doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn
    """.split()
)
WORD_PATTERN = re.compile(r"[a-z0-9]+")


@cache
def _porter() -> "PorterStemmer":
    """Imported when a word is first stemmed: importing nltk takes ~1.5 s (it loads scikit-learn),
    which every CLI command paid, `loci --help` included, since the eval commands import the index."""
    from nltk.stem import PorterStemmer

    return PorterStemmer()


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _porter().stem(word)


def tokenize(text: str) -> list[str]:
    """Lowercase, split on non-alphanumerics, drop stop words, stem."""
    return [stem(w) for w in WORD_PATTERN.findall(text.lower()) if w not in STOP_WORDS]


def name_words(text: object) -> frozenset[str]:
    """Unstemmed lowercase words of a name, or of a question to meet names in; stop words and initials out."""
    if not isinstance(text, str):
        return frozenset()
    return frozenset(w for w in WORD_PATTERN.findall(text.lower()) if len(w) > 2 and w not in STOP_WORDS)
