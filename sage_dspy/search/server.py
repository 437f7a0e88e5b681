"""The embedded bm25s index served with Search-R1's retrieval API, for training rollouts (Search-R1's
`retriever.url`, verl's search tool) to search the very index the pairs were verified against.

The request and reply models follow search_r1/search/retrieval_server.py: POST /retrieve {"queries", "topk",
"return_scores"} -> {"result": [[{"document": {...}, "score"}, ...], ...]}, bare documents when return_scores is
false, topk defaulting to the server's. Each document carries Search-R1's "contents" ('"Title"\\ntext', which
its clients parse) plus "id", "title" and "text". Endpoints are plain `def`s, so FastAPI runs them on its thread
pool: requests are answered concurrently (the index is read-only). uvicorn stops cleanly on SIGTERM/SIGINT.

Additions Search-R1's clients do not read (they take `reply["result"]` and each document's "contents"): every
reply carries {"metadata": {"fingerprint"}}, the index's fingerprint that GET /health reports too, so a run can
tell which index answered it (search/identity.py). A request is bounded (`Limits`): a body over max_body_bytes,
more than max_queries queries or more than max_results documents asked for is 413, a topk outside 1..max_topk
is 422, before any search runs; without them 100 queries at a topk of 10^6 took 1.6 GB.
"""

import json
import socket
from dataclasses import dataclass
from typing import Optional

from pydantic import BaseModel

from sage_dspy.ports import bind as bind_port
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.passages import Passage

DEFAULT_TOPK = 3  # Search-R1's retrieval_server.py --topk default, and the agents' search k


@dataclass(frozen=True)
class Limits:
    """What one request may ask. The defaults fit Search-R1's training batches (train_ppo.sh: 512 prompts x 5
    rollouts send up to 2,560 queries in one request, at topk 3) with room to spare."""

    max_queries: int = 4096
    max_topk: int = 100
    max_body_bytes: int = 8 * 1024 * 1024
    # queries x topk: what the reply's size follows (4,096 x 100 documents of the dev corpus: a 508 MB reply,
    # 3.2 GB at the server's peak); 32,768 takes a training batch at topk 12
    max_results: int = 32_768


class QueryRequest(BaseModel):
    queries: list[str]
    topk: Optional[int] = None
    return_scores: bool = False


def document(passage: Passage) -> dict:
    return {"id": passage.id, "contents": f'"{passage.title}"\n{passage.text}', "title": passage.title,
            "text": passage.text}


def retrieve(index: SearchIndex, request: QueryRequest, default_topk: int = DEFAULT_TOPK) -> dict:
    """Search-R1's reply to `request`, one list of documents per query, best first (`metadata` aside)."""
    topk = default_topk if request.topk is None else request.topk
    result = []
    for query in request.queries:
        hits = index.search(query, topk)
        if request.return_scores:
            result.append([{"document": document(hit.passage), "score": hit.score} for hit in hits])
        else:
            result.append([document(hit.passage) for hit in hits])
    return {"result": result, "metadata": {"fingerprint": index.fingerprint}}


def refusal(request: QueryRequest, limits: Limits, default_topk: int) -> tuple[int, str] | None:
    """(HTTP status, why) for a request beyond `limits`; None for one within them."""
    if len(request.queries) > limits.max_queries:
        return 413, (f"{len(request.queries)} queries in one request; this server takes at most "
                     f"{limits.max_queries} (serve-index --max-queries): send them in smaller batches")
    if request.topk is not None and not 1 <= request.topk <= limits.max_topk:
        return 422, (f"topk {request.topk} is not within 1..{limits.max_topk} (serve-index --max-topk); leave it "
                     "out for the server's default")
    results = len(request.queries) * (default_topk if request.topk is None else request.topk)
    if results > limits.max_results:
        return 413, (f"{len(request.queries)} queries at topk {results // len(request.queries)} ask for {results} "
                     f"documents; this server returns at most {limits.max_results} a request (serve-index "
                     "--max-results): send fewer queries per request")
    return None


def create_app(index: SearchIndex, default_topk: int = DEFAULT_TOPK, limits: Limits = Limits()):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI(title="sage-dspy retrieval server")
    fingerprint = index.fingerprint  # stored with the index: never a pass over millions of passages

    @app.post("/retrieve")
    def retrieve_endpoint(request: QueryRequest):
        refused = refusal(request, limits, default_topk)
        if refused:
            return JSONResponse({"detail": refused[1]}, status_code=refused[0])
        return retrieve(index, request, default_topk)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "passages": len(index), "fingerprint": fingerprint}

    return BodyLimit(app, limits.max_body_bytes)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 without being read further. A declared
    Content-Length is checked before any byte is read; a chunked body is counted as it comes."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(send)
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._too_large(send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        return await self.app(scope, replay, send)

    async def _too_large(self, send) -> None:
        detail = (f"the request body is over {self.max_bytes} bytes (serve-index --max-body-bytes); send fewer "
                  "queries per request")
        data = json.dumps({"detail": detail}).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                   (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (sage_dspy.ports: a taken port is one line), listening already."""
    sock = bind_port(host, port)
    sock.listen(2048)  # uvicorn's backlog; connections made before it serves wait here instead of being refused
    return sock


def serve(index: SearchIndex, sock: socket.socket, default_topk: int = DEFAULT_TOPK,
          limits: Limits = Limits()) -> None:
    """Serve until SIGTERM or SIGINT; uvicorn then finishes the requests in flight and returns."""
    import uvicorn

    config = uvicorn.Config(create_app(index, default_topk, limits), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
