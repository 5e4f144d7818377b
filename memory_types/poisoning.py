"""Memory poisoning defences: trust by provenance, and flags on content that reads as instructions.

A memory is later pasted into a model's context, so text that talks to the model ("ignore previous
instructions"), impersonates a system prompt, carries a tool call, or hides text from the human
reading it can hijack an agent long after it was written. Detection is deliberately simple and
explainable: each rule is a named pattern, a memory keeps the names of the rules it matched, and
search can leave flagged or low-trust memories out. Nothing is rejected: a flag is evidence, not
a verdict (a security researcher's notes legitimately quote injections).
"""

import re
import unicodedata
from typing import Final

# Trust of a memory by who produced it: what the user said outranks what an agent inferred, which
# outranks tool output and bulk imports (the usual carriers of third-party text).
TRUST_BY_SOURCE: Final[dict[str, float]] = {"user": 1.0, "agent": 0.8, "tool": 0.6, "import": 0.5}

_INVISIBLE = "\u200b\u2060\u2061\u2062\u2063\u2064\u180e\ufeff"  # zero-width space, word joiner, ...
_JOINERS = "\u200c\u200d"  # zero-width (non-)joiner: part of emoji and of many scripts
_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_TAGS = "\U000e0000-\U000e007f"
# Tag characters are legitimate only inside an emoji subdivision flag (black flag + tags + cancel tag).
_EMOJI_TAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")
_HIDDEN = re.compile(f"[{_INVISIBLE}{_BIDI_CONTROLS}{_TAGS}]")
# Joiners hide text when they sit next to plain letters or digits rather than emoji or script.
_JOINER_IN_ASCII = re.compile(f"[A-Za-z0-9][{_JOINERS}]|[{_JOINERS}][A-Za-z0-9]")
_STRIP_INVISIBLE = re.compile(f"[{_INVISIBLE}{_JOINERS}{_BIDI_CONTROLS}{_TAGS}]")

_I = re.IGNORECASE
_RULES: Final[dict[str, tuple[re.Pattern[str], ...]]] = {
    "instruction_override": (
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?:all|any|every|the|your|my|these|those)\s+)*"
            r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system)\s+"
            r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|context|messages?)\b",
            _I,
        ),
        re.compile(
            r"\b(?:ignore|disregard|forget)\s+(?:everything|anything|all)\s+(?:above|before|prior|you\s+were\s+told)\b",
            _I,
        ),
        re.compile(r"\bnew\s+system\s+(?:instructions?|prompt)\b", _I),
    ),
    "role_reassignment": (
        re.compile(
            r"\byou\s+are\s+(?:now|no\s+longer)\s+(?:an?\s+|the\s+|my\s+)?(?:\w+\s+){0,3}"
            r"(?:assistant|ai|chatbot|bot|persona|character|dan|jailbroken|unrestricted|unfiltered|language\s+model)\b",
            _I,
        ),
        re.compile(
            r"\byou\s+are\s+now\s+in\s+(?:developer|dev|god|admin|jailbreak|dan|unrestricted|debug|sudo|root)\s+mode\b",
            _I,
        ),
        re.compile(
            r"\bfrom\s+now\s+on,?\s+you\s+(?:will|must|shall|should|are\s+to)\s+(?:only\s+|always\s+|never\s+)?"
            r"(?:respond|reply|answer|act|behave|ignore|obey|follow|speak|pretend)\b",
            _I,
        ),
        re.compile(
            r"\b(?:pretend|act)\s+(?:to\s+be|that\s+you\s+are|as\s+if\s+you\s+(?:are|were))\s+(?:an?\s+)?(?:\w+\s+){0,2}(?:ai|assistant|model|system)\b",
            _I,
        ),
        re.compile(r"\byour\s+new\s+(?:role|persona|instructions|task|objective)\s+(?:is|are)\b", _I),
    ),
    "system_prompt_marker": (
        re.compile(
            r"<\|(?:im_start|im_end|system|user|assistant|endoftext|start_header_id|end_header_id|eot_id)\|>", _I
        ),
        re.compile(r"\[/?INST\]|<</?SYS>>"),
        re.compile(r"</?\s*(?:system|system_prompt|instructions)\s*>", _I),
        re.compile(r"^\s*#{2,}\s*system(?:\s+prompt)?\s*:?\s*$", _I | re.MULTILINE),
        re.compile(r"\b(?:begin|end)\s+(?:of\s+)?system\s+prompt\b", _I),
    ),
    "tool_call_payload": (
        re.compile(r"\"(?:tool_calls|function_call|tool_use|tool_call|tool_name)\"\s*:"),
        re.compile(r"\{\s*\"name\"\s*:\s*\"[^\"]{1,100}\"\s*,\s*\"(?:arguments|parameters|input)\"\s*:\s*[{\"]"),
        re.compile(r"<\s*/?\s*(?:tool_call|tool_use|function_calls?|invoke)\b", _I),
    ),
    "html_comment": (re.compile(r"<!--.*?(?:-->|$)", re.DOTALL),),
    "script_markup": (
        re.compile(r"<\s*(?:script|iframe|object|embed)\b", _I),
        re.compile(r"\bjavascript:(?!\s)", _I),
        re.compile(r"<[a-z][^<>]{0,500}\bon(?:error|load|click|mouseover|focus)\s*=", _I),
    ),
    "markdown_exfiltration": (
        re.compile(r"!\[[^\]]{0,500}\]\(\s*https?://[^)\s?]{1,500}\?[^)\s]{0,2000}=[^)\s]{0,2000}\)", _I),
    ),
}

FLAGS: Final[tuple[str, ...]] = ("hidden_characters", *_RULES)


def default_trust(source: str) -> float:
    return TRUST_BY_SOURCE[source]


def _has_hidden_characters(text: str) -> bool:
    text = _EMOJI_TAG_SEQUENCE.sub("", text)
    # A byte-order mark opening a pasted file is an artefact, not an attempt to hide anything.
    return bool(_HIDDEN.search(text.removeprefix("\ufeff"))) or bool(_JOINER_IN_ASCII.search(text))


def poisoning_flags(content: str) -> list[str]:
    """Names of the rules `content` matches, in FLAGS order; empty for ordinary text.

    Rules run on a normalised copy (compatibility forms folded, invisible characters removed) so
    full-width letters or a zero-width space inside "ignore" do not slip past them.
    """
    flags = ["hidden_characters"] if _has_hidden_characters(content) else []
    visible = _STRIP_INVISIBLE.sub("", unicodedata.normalize("NFKC", content))
    flags.extend(name for name, patterns in _RULES.items() if any(p.search(visible) for p in patterns))
    return flags
