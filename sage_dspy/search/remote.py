"""A retrieval server as the search backend, spoken to with Search-R1's API (search_r1/search/retrieval_server.py).

POST {"queries": [q], "topk": k, "return_scores": true} is answered by {"result": [[{"document": {"id",
"contents", ...}, "score"}, ...]]}, where `contents` is '"Title"\\ntext' (wiki-18's layout). With
`return_scores: false` Search-R1 answers bare documents instead of {"document", "score"} items: both are read.
A request that fails after its retries raises SearchFailed: RetrieverUnavailable where the retriever failed at
the infrastructure (unreachable, timeout, 5xx: the search is void, and the breaker hears of it), else a plain
SearchFailed (a 4xx, a malformed reply) that the search tool turns into an observation the agent reads.
"""

import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request

from sage_dspy.breaker import RETRIEVER, BackendFault, observe
from sage_dspy.errors import SageError
from sage_dspy.search.passages import Hit, Passage

TIMEOUT_S = 10.0  # one request; a dense retriever on a GPU answers in tens of ms
RETRIES = 2  # after the first try, on timeouts, refused connections and 5xx (as verl's search tool does)
BACKOFF_S = 0.2  # doubled per retry
RETRIED = ("timeout", "unreachable", "server error")  # a 4xx or a malformed reply will not change on retry


class SearchFailed(Exception):
    """A search the retriever could not answer. `kind` is short and stable: the summary counts by it."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class RetrieverUnavailable(SearchFailed, BackendFault):
    """The retriever failed at the infrastructure after its retries (a RETRIED kind): a void search."""

    def __init__(self, kind: str, message: str):
        BackendFault.__init__(self, RETRIEVER, kind, message)


class RetrieverURLError(SageError, ValueError):
    pass


def check_url(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # an unclosed "[" of an IPv6 host
        raise RetrieverURLError("--retriever is not a URL; pass the server's endpoint, e.g. "
                                "http://127.0.0.1:8000/retrieve") from None
    if "@" in parts.netloc:  # said without the URL, which holds the secret (as --api-base: lm/endpoint.py)
        raise RetrieverURLError("--retriever carries credentials (user:password@ before the host), which the "
                                "search client would take as part of the host name (every search would fail); "
                                "pass the URL without them, with an authenticating proxy on 127.0.0.1 in front of "
                                "a server that needs them")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RetrieverURLError(f"--retriever {url!r} is not an http(s) URL; pass the server's endpoint, "
                                "e.g. http://127.0.0.1:8000/retrieve")
    return url


def redacted(url: str) -> str:
    """What a run's settings record: "<set>", never the URL (it may carry a token or an internal host)."""
    return "<set>" if url else ""


def split_contents(contents: str) -> tuple[str, str]:
    """'"Title"\\ntext' -> (Title, text): the first line is the title, its quotes stripped as Search-R1's
    own BM25 retriever does (content.split("\\n")[0].strip('"'))."""
    first, _, rest = contents.partition("\n")
    return first.strip().strip('"'), rest.strip()


def document_passage(document: dict, fallback_id: str) -> Passage:
    """A Search-R1 document as a passage: its `title` and `text` where it has both (Search-R1's BM25 server
    and ours send them), else its `contents` split."""
    if isinstance(document.get("title"), str) and isinstance(document.get("text"), str):
        title, text = document["title"], document["text"]
    else:
        title, text = split_contents(str(document["contents"]))
    passage_id = document.get("id", document.get("_id"))
    return Passage(fallback_id if passage_id in (None, "") else str(passage_id), title, text)


def parse_reply(reply: object, query: str) -> list[Hit]:
    """The hits for the one query of a request; SearchFailed("malformed reply") for any other shape."""
    try:
        [items] = reply["result"]
        hits = []
        for rank, item in enumerate(items, start=1):
            scored = isinstance(item, dict) and "document" in item
            document = item["document"] if scored else item
            score = float(item.get("score", 0.0)) if scored else 0.0
            fallback = "r" + hashlib.sha1(json.dumps(document, sort_keys=True).encode()).hexdigest()[:12]
            hits.append(Hit(document_passage(document, fallback), score, rank))
        return hits
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise SearchFailed("malformed reply", f"the retriever's reply to {query!r} is not Search-R1's "
                                              f"{{\"result\": [[...]]}} ({type(error).__name__})") from None


class RemoteIndex:
    """Search through a retrieval server; the same `search(query, k) -> hits` as SearchIndex."""

    def __init__(self, url: str, *, timeout: float | None = None, retries: int | None = None,
                 backoff: float | None = None):
        self.url = check_url(url)
        self.timeout = TIMEOUT_S if timeout is None else timeout
        self.retries = RETRIES if retries is None else retries
        self.backoff = BACKOFF_S if backoff is None else backoff

    def search(self, query: str, k: int = 3) -> list[Hit]:
        if k < 1 or not (query or "").strip():
            return []
        body = json.dumps({"queries": [query], "topk": k, "return_scores": True}).encode("utf-8")
        try:
            reply = self._post(body, query)
        except SearchFailed as failure:
            if failure.kind in RETRIED:
                observe(RETRIEVER, ok=False)
                raise RetrieverUnavailable(failure.kind, str(failure)) from None
            observe(RETRIEVER, ok=True)  # it answered (a 4xx): not an infrastructure failure
            raise
        observe(RETRIEVER, ok=True)
        return parse_reply(reply, query)[:k]

    def ask(self, payload: dict, what: str) -> object:
        """The decoded reply to any request `payload` (search/identity.py's probe), sent and retried as a search
        is; `what` names it in a SearchFailed's message."""
        return self._post(json.dumps(payload).encode("utf-8"), what)

    def _post(self, body: bytes, query: str) -> object:
        for attempt in range(self.retries + 1):
            try:
                return self._post_once(body, query)
            except SearchFailed as failure:
                if failure.kind not in RETRIED or attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def _post_once(self, body: bytes, query: str) -> object:
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise SearchFailed("server error" if error.code >= 500 else "refused request",
                               f"the retriever answered HTTP {error.code} to {query!r}") from None
        except (TimeoutError, OSError) as error:  # socket timeouts, refused connections, resets
            timed_out = isinstance(error, TimeoutError) or "timed out" in str(error)
            raise SearchFailed("timeout" if timed_out else "unreachable",
                               f"the retriever did not answer {query!r} within {self.timeout:g} s" if timed_out
                               else f"the retriever could not be reached ({type(error).__name__})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise SearchFailed("malformed reply", f"the retriever's reply to {query!r} is not JSON") from None
