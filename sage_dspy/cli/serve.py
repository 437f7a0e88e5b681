"""`sage serve-index`: the embedded bm25s index over Search-R1's retrieval API (search/server.py)."""

from typing import Annotated

import typer

from sage_dspy.cli.options import IdField, TextField, TitleField, corpus_fields
from sage_dspy.cli.printing import out
from sage_dspy.environment import ARTIFACTS
from sage_dspy.errors import SageError
from sage_dspy.search.corpus_index import open_corpus_index
from sage_dspy.search.server import DEFAULT_TOPK, Limits, bind, serve

LIMITS = Limits()


def serve_index_command(
    corpus: Annotated[str, typer.Option(help="the corpus to serve: 'bundled', a file or folder (as generate's "
                                             "--corpus)")] = "bundled",
    text_field: TextField = None,
    title_field: TitleField = None,
    id_field: IdField = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on (Search-R1's default: 8000)")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on; 0.0.0.0 exposes the index to the network")] =
        "127.0.0.1",
    topk: Annotated[int, typer.Option(min=1, help="passages per query when a request sends no topk")] = DEFAULT_TOPK,
    max_topk: Annotated[int, typer.Option(min=1, help="largest topk a request may ask for (beyond: HTTP 422)")] =
        LIMITS.max_topk,
    max_queries: Annotated[int, typer.Option(min=1, help="most queries in one request (beyond: HTTP 413)")] =
        LIMITS.max_queries,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="largest request body in bytes (beyond: HTTP 413)")] =
        LIMITS.max_body_bytes,
    max_results: Annotated[int, typer.Option(min=1, help="most documents one request may ask for, queries x topk "
                                                         "(beyond: HTTP 413)")] = LIMITS.max_results,
) -> None:
    """Serve a corpus's search index with Search-R1's API (POST /retrieve, GET /health) until Ctrl-C or SIGTERM."""
    if topk > max_topk:
        raise SageError(f"--topk {topk} is above --max-topk {max_topk}; lower --topk or raise --max-topk")
    # a missing corpus or an unknown field: one line, no port taken
    index = open_corpus_index(corpus, root=ARTIFACTS / "indexes", **corpus_fields(text_field, title_field, id_field))
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    out.print(f"serving {len(index)} passages of {corpus} at http://{shown}:{sock.getsockname()[1]}/retrieve "
              f"(index {index.fingerprint}; GET /health; Ctrl-C stops)", highlight=False, markup=False, soft_wrap=True)
    serve(index, sock, topk, Limits(max_queries, max_topk, max_body_bytes, max_results))
