"""What identifies a retrieval server: its URL up to spelling, and the index behind it.

A run records both (config.json: `retriever_fingerprint`, `retriever_index`), so that resuming it against
another server, or against another index behind the same URL, is refused instead of mixing records of two
indexes in one file.

The URL is compared as the connection sees it: scheme and host lower-cased, `localhost`, `127.0.0.1` and
`[::1]` one host, the default port filled in, no trailing slash, the query kept (it may select an index).
Only a hash is recorded, never the URL (it may name an internal host).

The index: `sage serve-index` names it in every reply (`metadata.fingerprint`, search/server.py), and that
fingerprint is the identity. A server that does not (Search-R1's own retrieval_server.py) is known by what it
answers: the ids of the documents it returns for PROBE_QUERIES, in order, hashed ("probe-<12 hex>"). Ids, not
scores: ids are what records cite, while a dense retriever's scores may move in their last digits with batch
size or GPU. Two indexes that rank alike for all the probes pass as one; their records would cite the same
documents for those queries, and any other change of corpus or ids shows.
"""

import hashlib
import json
import urllib.parse
from dataclasses import dataclass

from sage_dspy.search.remote import parse_reply, redacted, RemoteIndex, RETRIED, SearchFailed

LOOPBACK_ALIASES = ("localhost", "127.0.0.1", "::1")  # one host: the machine itself
DEFAULT_PORTS = {"http": 80, "https": 443}
# Everyday words that some passages of any English corpus hold, one topic apart: a few of them match even a
# small corpus, and a changed corpus changes what they find.
PROBE_QUERIES = ("city", "river", "war", "born", "university", "film", "music", "king", "water", "history",
                 "company", "church")
PROBE_TOPK = 5
PROBE_PREFIX = "probe-"  # an identity read from the probes' ids, not told by the server


@dataclass(frozen=True)
class IndexIdentity:
    value: str  # the served index's fingerprint, "probe-<12 hex>", or "" when it could not be read
    served_by_sage: bool  # the server named its index as `sage serve-index` does
    problem: str = ""  # why `value` is "", in a few words
    fault: bool = False  # the server failed at the infrastructure (unreachable, timeout, 5xx): it may yet answer


def canonical_url(url: str) -> str:
    """`url` as the connection sees it (see the module docstring); userinfo and fragment left out."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    host = LOOPBACK_ALIASES[1] if host in LOOPBACK_ALIASES else host
    port = parts.port or DEFAULT_PORTS.get(scheme, 0)
    shown = f"[{host}]" if ":" in host else host
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{shown}:{port}{parts.path.rstrip('/')}{query}"


def url_fingerprint(url: str) -> str:
    """12 hex chars naming the retriever's address without revealing it; "" for no retriever."""
    return hashlib.sha256(canonical_url(url).encode("utf-8")).hexdigest()[:12] if url else ""


def earlier_url_fingerprint(url: str) -> str:
    """The fingerprint runs recorded before URLs were compared up to spelling: the URL as typed. A folder that
    holds it resumes as it always did."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12] if url else ""


def retriever_settings(url: str, index: str | None) -> dict:
    """What a run's settings say of its retriever: nothing for the embedded index; else "<set>" for the URL,
    its fingerprint, and the index's identity when it is known."""
    if not url:
        return {}
    settings = {"retriever": redacted(url), "retriever_fingerprint": url_fingerprint(url)}
    return {**settings, "retriever_index": index} if index else settings


def read_index_identity(url: str, timeout: float | None = None) -> IndexIdentity:
    """Ask the server at `url` which index it serves: first one query at topk 1, which any server's request caps
    let through and whose reply `sage serve-index` signs with its fingerprint; a server that does not is sent
    PROBE_QUERIES. Never raises for the server's faults: they leave the identity unknown, with the reason."""
    remote = RemoteIndex(url, timeout=timeout)
    try:
        told = _fingerprint_in(remote.ask({"queries": [PROBE_QUERIES[0]], "topk": 1}, "the identity probe"))
        if told:
            return IndexIdentity(told, served_by_sage=True)
        payload = {"queries": list(PROBE_QUERIES), "topk": PROBE_TOPK, "return_scores": True}
        reply = remote.ask(payload, "the identity probe")
        ids = [[hit.passage.id for hit in parse_reply({"result": [found]}, query)]
               for query, found in zip(PROBE_QUERIES, reply["result"], strict=True)]
    except SearchFailed as failure:
        return IndexIdentity("", False, f"{failure.kind}: {failure}", fault=failure.kind in RETRIED)
    except (KeyError, TypeError, ValueError, AttributeError):
        return IndexIdentity("", False, "its reply to the probe queries is not Search-R1's {\"result\": [[...]]}")
    if not any(ids):
        return IndexIdentity("", False, "it found nothing for any of the probe queries")
    digest = hashlib.sha256(json.dumps(ids).encode("utf-8")).hexdigest()[:12]
    return IndexIdentity(PROBE_PREFIX + digest, served_by_sage=False)


def _fingerprint_in(reply) -> str:
    """The index fingerprint `sage serve-index` puts in every reply's metadata, or "" for another server."""
    told = reply.get("metadata", {}).get("fingerprint") if isinstance(reply, dict) else None
    return told if isinstance(told, str) else ""
