"""What one request may cost `sage serve-index` at its caps (search/server.py's Limits): the reply's size, the
time, and the server's memory (RSS now and at its peak, from /proc), against a corpus you name.

    .venv/bin/python -m bench.serve_caps ../shared/data/dev/corpus.jsonl

Requests, in order: the issue's 100 queries at topk 10^6 (refused now), the largest the caps let through
(max_queries queries at max_results / max_queries each), and a Search-R1 training batch (2,560 queries at
topk 3). The peak is the process's high-water mark after the last, so it is the largest request's.
"""

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from sage_dspy.search.server import Limits


def post(url: str, body: dict) -> tuple[int, int, float]:
    """(status, reply bytes, seconds)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:
            status, data = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, data = error.code, error.read()
    return status, len(data), time.perf_counter() - started


def memory_mib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        return int(re.search(rf"{field}:\s+(\d+)", status.read())[1]) // 1024


def main(corpus: str, port: int = 18977) -> None:
    server = subprocess.Popen([sys.executable, "-m", "sage_dspy", "serve-index", "--corpus", corpus, "--port",
                               str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        print(server.stdout.readline().strip())
        url, limits = f"http://127.0.0.1:{port}/retrieve", Limits()
        print(f"RSS at start: {memory_mib(server.pid, 'VmRSS')} MiB")
        with open(corpus, encoding="utf-8") as source:
            words = [w for w in source.read(400_000).split() if w.isalpha()]
        queries = [f"{word} history" for word in words[:limits.max_queries]]
        largest = limits.max_results // limits.max_queries
        for label, body in (("100 queries at topk 10^6", {"queries": queries[:100], "topk": 10 ** 6}),
                            (f"{len(queries)} queries at topk {largest}", {"queries": queries, "topk": largest,
                                                                           "return_scores": True}),
                            ("2560 queries at topk 3", {"queries": queries[:2560], "topk": 3, "return_scores": True})):
            status, size, seconds = post(url, body)
            print(f"{label}: HTTP {status}, {size / 1e6:.1f} MB reply, {seconds:.1f} s")
        print(f"RSS after: {memory_mib(server.pid, 'VmRSS')} MiB, peak: {memory_mib(server.pid, 'VmHWM')} MiB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
