"""A passage, its identity, and how the search tool writes passages for the agents (and reads them back).

The written form is the wire format between the search tool and the LMs: the offline LM parses it from the
prompts it receives, so it lives apart from the index and imports nothing else from sage_dspy.
"""

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

NO_MATCH = "No passages matched this query. Try other keywords."
SEARCH_FAILED = "Search failed"  # an observation "Search failed (<kind>): ..." when the retriever did not answer
_FAILURE = re.compile(r"^Search failed \((?P<kind>[^()\n]+)\):")


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    rank: int  # 1-based


def corpus_fingerprint(passages: Sequence[Passage]) -> str:
    """16 hex chars identifying the passages (ids, titles, texts, in order); stable across runs. An index's
    on-disk store (search/store.py) carries its own, computed when it was written: reading 21M passages
    again for it would take minutes."""
    known = getattr(passages, "fingerprint", None)
    if isinstance(known, str):
        return known
    digest = hashlib.sha1()
    for passage in passages:
        digest.update("\x1f".join((passage.id, passage.title, passage.text)).encode("utf-8") + b"\x1e")
    return digest.hexdigest()[:16]


def content_id(title: str, text: str) -> str:
    """The id convention of /work/shared/data/dev/corpus.jsonl: "p" + sha1(title + "\\n" + text)[:12]."""
    return "p" + hashlib.sha1(f"{title}\n{text}".encode("utf-8")).hexdigest()[:12]


def format_passage(passage: Passage) -> str:
    return f"{passage.title} (id: {passage.id})\n{passage.text}"


def format_hits(hits: Sequence[Hit]) -> str:
    if not hits:
        return NO_MATCH
    return "\n\n".join(f"[{hit.rank}] {format_passage(hit.passage)}" for hit in hits)


def format_failure(kind: str, message: str) -> str:
    return f"{SEARCH_FAILED} ({kind}): {message}. Search again, or try other keywords."


def failure_kind(observation: str) -> str | None:
    """The kind of a failed search's observation ("timeout", "server error", ...); None for any other text."""
    match = _FAILURE.match(observation)
    return match["kind"] if match else None


_HEADER = re.compile(r"^(?:\[\d+\] )?(?P<title>.*?) \(id: (?P<id>[^()\n]+)\)[ \t]*$", re.MULTILINE)


def parse_passages(text: str) -> list[Passage]:
    """Passages written by format_hits or format_passage anywhere in `text` (first occurrence of each id).

    A passage is a header line "[n] title (id: ...)" (the "[n] " is optional) and the lines after it up to
    a blank line or the next header. Other text is ignored.
    """
    passages: dict[str, Passage] = {}
    headers = list(_HEADER.finditer(text))
    for header, following in zip(headers, headers[1:] + [None]):
        body = text[header.end():following.start() if following else len(text)]
        body = body.lstrip("\n").split("\n\n", 1)[0].strip()
        if body and header["id"] not in passages:
            passages[header["id"]] = Passage(header["id"], header["title"], body)
    return list(passages.values())
