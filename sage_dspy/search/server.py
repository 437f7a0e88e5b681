"""The embedded bm25s index served with Search-R1's retrieval API, for training rollouts (Search-R1's
`retriever.url`, verl's search tool) to search the very index the pairs were verified against.

The request and reply models follow search_r1/search/retrieval_server.py: POST /retrieve {"queries", "topk",
"return_scores"} -> {"result": [[{"document": {...}, "score"}, ...], ...]}, bare documents when return_scores is
false, topk defaulting to the server's. Each document carries Search-R1's "contents" ('"Title"\\ntext', which
its clients parse) plus "id", "title" and "text". Endpoints are plain `def`s, so FastAPI runs them on its thread
pool: requests are answered concurrently (the index is read-only). uvicorn stops cleanly on SIGTERM/SIGINT.
"""

import errno
import socket
from typing import Optional

from pydantic import BaseModel

from sage_dspy.errors import SageError
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.passages import Passage

DEFAULT_TOPK = 3  # Search-R1's retrieval_server.py --topk default, and the agents' search k


class PortInUseError(SageError):
    pass


class QueryRequest(BaseModel):
    queries: list[str]
    topk: Optional[int] = None
    return_scores: bool = False


def document(passage: Passage) -> dict:
    return {"id": passage.id, "contents": f'"{passage.title}"\n{passage.text}', "title": passage.title,
            "text": passage.text}


def retrieve(index: SearchIndex, request: QueryRequest, default_topk: int = DEFAULT_TOPK) -> dict:
    """Search-R1's reply to `request`, one list of documents per query, best first."""
    topk = request.topk or default_topk
    result = []
    for query in request.queries:
        hits = index.search(query, topk)
        if request.return_scores:
            result.append([{"document": document(hit.passage), "score": hit.score} for hit in hits])
        else:
            result.append([document(hit.passage) for hit in hits])
    return {"result": result}


def create_app(index: SearchIndex, default_topk: int = DEFAULT_TOPK):
    from fastapi import FastAPI

    app = FastAPI(title="sage-dspy retrieval server")
    fingerprint = index.fingerprint  # stored with the index: never a pass over millions of passages

    @app.post("/retrieve")
    def retrieve_endpoint(request: QueryRequest) -> dict:
        return retrieve(index, request, default_topk)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "passages": len(index), "fingerprint": fingerprint}

    return app


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is one line naming the fix (uvicorn would log
    a traceback-like error and exit 1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use; stop the program using it or pass "
                                 "another --port") from None
        raise PortInUseError(f"cannot listen on {host}:{port} ({error.strerror}); pass another --host or "
                             "--port") from None
    sock.listen(2048)  # uvicorn's backlog; connections made before it serves wait here instead of being refused
    return sock


def serve(index: SearchIndex, sock: socket.socket, default_topk: int = DEFAULT_TOPK) -> None:
    """Serve until SIGTERM or SIGINT; uvicorn then finishes the requests in flight and returns."""
    import uvicorn

    config = uvicorn.Config(create_app(index, default_topk), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
