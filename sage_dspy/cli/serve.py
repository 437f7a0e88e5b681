"""`sage serve-index`: the embedded bm25s index over Search-R1's retrieval API (search/server.py)."""

from typing import Annotated

import typer

from sage_dspy.cli.printing import out
from sage_dspy.environment import ARTIFACTS
from sage_dspy.search.corpus_index import open_corpus_index
from sage_dspy.search.server import DEFAULT_TOPK, bind, serve


def serve_index_command(
    corpus: Annotated[str, typer.Option(help="the corpus to serve: 'bundled', a file or folder (as generate's "
                                             "--corpus)")] = "bundled",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on (Search-R1's default: 8000)")] = 8000,
    host: Annotated[str, typer.Option(help="address to listen on; 0.0.0.0 exposes the index to the network")] =
        "127.0.0.1",
    topk: Annotated[int, typer.Option(min=1, help="passages per query when a request sends no topk")] = DEFAULT_TOPK,
) -> None:
    """Serve a corpus's search index with Search-R1's API (POST /retrieve, GET /health) until Ctrl-C or SIGTERM."""
    index = open_corpus_index(corpus, root=ARTIFACTS / "indexes")  # a missing corpus: one line, no port taken
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    out.print(f"serving {len(index)} passages of {corpus} at http://{shown}:{sock.getsockname()[1]}/retrieve "
              "(GET /health; Ctrl-C stops)", highlight=False, markup=False, soft_wrap=True)
    serve(index, sock, topk)
