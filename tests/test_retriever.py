"""A retrieval server as the search backend (search/remote.py), our index served with Search-R1's API
(`sage serve-index`, search/server.py), and Search-R1's wiki-18 corpus layout; checked against Search-R1's own
request and parsing code (tests/vendor/search_r1_generation.py)."""

import json
import signal
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from cli_helpers import assert_one_line_error, invoke
from retriever_fixture import StandIn, serve_index, stand_in_server
from sage_dspy.method.trajectory import passages_seen, Step
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.generate import generate
from sage_dspy.search import remote
from sage_dspy.search.corpus import load_corpus
from sage_dspy.search.identity import PROBE_QUERIES
from sage_dspy.search.passages import failure_kind
from sage_dspy.runs.preflight import RetrieverUnreachableError
from sage_dspy.search.remote import RemoteIndex, RetrieverUnavailable, SearchFailed
from sage_dspy.search.tool import SearchTool
from vendor.search_r1_generation import GenerationConfig, LLMGenerationManager

TIMING = ("seconds",)  # the one field of a record that is a measurement, not a result


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(remote, "BACKOFF_S", 0.0)


def without_timing(path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in path.read_text(encoding="utf-8").splitlines()]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`sage serve-index` over the tiny corpus, as a real process, for the whole module."""
    from conftest import TINY_PASSAGES

    folder = tmp_path_factory.mktemp("served")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n"
                              for p in TINY_PASSAGES), encoding="utf-8")
    with serve_index(corpus, folder / "server") as server:
        yield corpus, server
        server.process.send_signal(signal.SIGTERM)
        # uvicorn finishes the requests in flight, then re-raises the signal: the conventional exit status
        assert server.process.wait(timeout=10) == -signal.SIGTERM, server.output()
        assert server.stderr.read_text() == ""


# ------------------------------------------------------------------------------ our server, end to end

def test_generate_over_serve_index_gives_the_records_of_the_embedded_run(served, workdir):
    corpus, server = served
    common = ("--corpus", corpus, "--seeds", 4, "--targets", "2-3", "--seed", 1, "--no-track")
    embedded = invoke("generate", *common, "--out", workdir / "embedded")
    assert embedded.exit_code == 0, embedded.output
    remote_run = invoke("generate", *common, "--out", workdir / "remote", "--retriever", server.url)
    assert remote_run.exit_code == 0, remote_run.output

    records = without_timing(workdir / "remote" / "records.jsonl")
    assert records == without_timing(workdir / "embedded" / "records.jsonl")
    searched = [step for r in records for past in r["rounds"] for step in past["generator_steps"]]
    assert searched and all(step["tool"] != "search" or "(id: p-" in step["observation"] or
                            "No passages" in step["observation"] for step in searched)
    summary = json.loads((workdir / "remote" / "summary.json").read_text())
    assert summary["failures"]["searches"] == {}
    settings = json.loads((workdir / "remote" / "config.json").read_text())
    assert settings["retriever"] == "<set>" and len(settings["retriever_fingerprint"]) == 12
    assert server.url not in (workdir / "remote" / "config.json").read_text()
    assert "retriever" not in json.loads((workdir / "embedded" / "config.json").read_text())


def test_a_resume_with_another_retriever_is_refused_but_not_with_another_spelling(served, workdir):
    corpus, server = served
    common = ("--corpus", corpus, "--seeds", 1, "--no-track", "--out", workdir / "run")
    assert invoke("generate", *common, "--retriever", server.url).exit_code == 0
    other = server.url.replace("127.0.0.1", "LocalHost")  # (a trailing slash is the same URL too, but a
    resumed = invoke("generate", *common, "--retriever", other)  # FastAPI server answers it with a 307)
    assert resumed.exit_code == 0, resumed.output
    elsewhere = server.url + "?index=other"  # the same server answers, but the query may choose another index
    assert_one_line_error(invoke("generate", *common, "--retriever", elsewhere), "retriever_fingerprint")
    assert_one_line_error(invoke("generate", *common), "retriever")


def test_search_r1s_own_client_parses_our_reply(served):
    _, server = served
    manager = LLMGenerationManager(GenerationConfig(search_url=server.url, topk=3))
    [text] = manager.batch_search(["Harbor Bridge designed"])
    assert text.startswith('Doc 1(Title: "Harbor Bridge") Harbor Bridge is a steel arch bridge')
    assert text.count("Doc ") == 3
    raw = manager._batch_search(["Harbor Bridge", "Corvel Institute rector"])
    assert [[item["document"]["id"] for item in found][0] for found in raw["result"]] == ["p-bridge", "p-corvel"]
    assert all(isinstance(item["score"], float) for found in raw["result"] for item in found)


def test_our_server_answers_bare_documents_without_scores_and_uses_its_default_topk(served):
    _, server = served
    reply = post(server.url, {"queries": ["Harbor Bridge"]})  # Search-R1's defaults: no topk, no scores
    [documents] = reply["result"]
    assert len(documents) == 3 and "score" not in documents[0]
    assert documents[0] == {"id": "p-bridge", "title": "Harbor Bridge", "contents": '"Harbor Bridge"\n'
                            + documents[0]["text"], "text": documents[0]["text"]}
    fingerprint = health(server.url)["fingerprint"]
    assert post(server.url, {"queries": ["zzzz qqqq"], "topk": 2}) == {"result": [[]],
                                                                       "metadata": {"fingerprint": fingerprint}}


def test_our_server_answers_concurrent_requests_and_health(served):
    _, server = served
    said = health(server.url)
    assert said["status"] == "ok" and said["passages"] == 8 and len(said["fingerprint"]) == 16
    queries = ["Harbor Bridge", "Ada Marlowe", "Corvel Institute", "Tobias Wren"] * 8
    with ThreadPoolExecutor(max_workers=16) as pool:
        firsts = list(pool.map(lambda q: post(server.url, {"queries": [q], "topk": 1})["result"][0][0]["title"],
                               queries))
    assert firsts == queries


def health(url: str) -> dict:
    with urllib.request.urlopen(url.replace("/retrieve", "/health"), timeout=5) as reply:
        return json.loads(reply.read())


def searches(stand_in: StandIn) -> list[dict]:
    """The requests the agents made: all but the two that asked which index the server holds (its signed reply
    to one query, then the probe queries)."""
    probes = (list(PROBE_QUERIES), [PROBE_QUERIES[0]])
    return [request for request in stand_in.requests if request["queries"] not in probes]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


# ------------------------------------------------------------------------------ a Search-R1 stand-in

def test_the_pipeline_over_a_search_r1_server_cites_its_ids_and_reads_its_passages(tiny_passages, tmp_path):
    stand_in = StandIn(tiny_passages)
    titles = {stand_in.ids[p.id]: p.title for p in tiny_passages}
    with stand_in_server(stand_in) as url:
        config = GenerateConfig(seeds=4, min_target=2, max_target=3, random_seed=1, out_dir=tmp_path / "run",
                                index_root=tmp_path / "indexes", retriever=url)
        result = generate(config, passages=list(tiny_passages))
    assert searches(stand_in) and all(r == {"queries": r["queries"], "topk": 3, "return_scores": True} and
                                      len(r["queries"]) == 1 for r in searches(stand_in))
    seed_ids = {p.id for p in tiny_passages}
    cited = [i for r in result.records for i in r["supporting_ids"] if i not in seed_ids]
    assert cited and set(cited) <= set(titles)  # supporting passages are the server's documents
    for record in result.records:
        assert set(record["supporting_ids"]) - set(titles) <= {record["seed_id"]}
        steps = [Step(**s) for past in record["rounds"] for a in past["attempts"] for s in a["steps"]]
        steps += [Step(**s) for past in record["rounds"] for s in past["generator_steps"]]
        seen = passages_seen(steps)  # the evidence the reviser is given, beside the seed
        assert seen and all(titles[p.id] == p.title for p in seen)  # ids and quote-free titles from `contents`
    assert result.summary["failures"]["searches"] == {}


@pytest.mark.parametrize("fault, kind", [("500", "server error"), ("garbage", "malformed reply"),
                                         ("wrong shape", "malformed reply")])
def test_a_retriever_failing_its_test_query_is_refused_before_any_call(fault, kind, tiny_passages, tmp_path,
                                                                        fast_retries):
    stand_in = StandIn(tiny_passages, fault=fault)
    with stand_in_server(stand_in) as url:
        config = GenerateConfig(seeds=2, min_target=2, max_target=2, out_dir=tmp_path / "run", k=2, rounds=1,
                                index_root=tmp_path / "indexes", retriever=url)
        with pytest.raises(RetrieverUnreachableError, match=f"did not answer a test query \\({kind}"):
            generate(config, passages=list(tiny_passages))
    assert not (tmp_path / "run").exists()
    assert len(stand_in.requests) == (1 + remote.RETRIES if kind == "server error" else 1)


def test_a_malformed_reply_is_an_observation_the_agent_reads():
    """The server answered, but not in Search-R1's shape: the agent reads the failure and goes on; it is not a
    void search (nothing to retry), and not a counted one either."""
    class Malformed:
        def search(self, query, k=3):
            raise SearchFailed("malformed reply", f"the retriever's reply to {query!r} is not JSON")

    observation = SearchTool(Malformed())("Harbor Bridge")
    assert failure_kind(observation) == "malformed reply"


def test_a_timeout_is_bounded_retried_and_voids_the_search(tiny_passages, fast_retries):
    stand_in = StandIn(tiny_passages, fault="timeout", delay_s=1.0)
    with stand_in_server(stand_in) as url:
        tool = SearchTool(RemoteIndex(url, timeout=0.2, retries=1))
        with pytest.raises(RetrieverUnavailable, match="0.2 s") as failed:
            tool("Harbor Bridge")
    assert failed.value.kind == "timeout" and len(stand_in.requests) == 2


def test_an_unreachable_retriever_voids_the_search(fast_retries):
    with pytest.raises(RetrieverUnavailable) as failed:
        SearchTool(RemoteIndex(f"http://127.0.0.1:{closed_port()}/retrieve", retries=0))("anything")
    assert failed.value.kind == "unreachable"


def test_remote_hits_keep_the_servers_ids_scores_and_order(tiny_passages):
    stand_in = StandIn(tiny_passages)
    with stand_in_server(stand_in) as url:
        hits = RemoteIndex(url).search("Corvel Institute rector", 3)
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].passage.id == stand_in.ids["p-corvel"]
    assert hits[0].passage.title == "Corvel Institute" and hits[0].passage.text.startswith("Corvel Institute is")
    assert [h.score for h in hits] == [score for _, score in stand_in.documents("Corvel Institute rector", 3)]


def test_replies_without_scores_and_malformed_items_are_read_or_refused():
    document = {"id": "7", "contents": '"Ada Marlowe"\nAda Marlowe was an engineer.'}
    [hit] = remote.parse_reply({"result": [[document]]}, "q")
    assert (hit.passage.id, hit.passage.title, hit.passage.text, hit.score) == ("7", "Ada Marlowe",
                                                                                "Ada Marlowe was an engineer.", 0.0)
    with pytest.raises(SearchFailed) as failed:
        remote.parse_reply({"result": [[{"document": {"id": "7"}}]]}, "q")
    assert failed.value.kind == "malformed reply"


# ------------------------------------------------------------------------------ the CLI's errors

def test_a_bad_retriever_url_is_one_line(tiny_corpus_file):
    result = invoke("generate", "--corpus", tiny_corpus_file, "--seeds", 1, "--no-track", "--retriever", "localhost")
    assert_one_line_error(result, "--retriever 'localhost' is not an http(s) URL")


def test_serve_index_refuses_a_missing_corpus_in_one_line(workdir):
    assert_one_line_error(invoke("serve-index", "--corpus", workdir / "nope.jsonl"), "does not exist")


def test_serve_index_refuses_a_port_in_use_in_one_line(tiny_corpus_file):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve-index", "--corpus", tiny_corpus_file, "--port", port)
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is already in use")


def test_serve_index_stops_cleanly_on_sigint(tiny_corpus_file, workdir):
    with serve_index(tiny_corpus_file, workdir / "server") as server:
        assert post(server.url, {"queries": ["Harbor Bridge"], "topk": 1})["result"][0][0]["id"] == "p-bridge"
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=10) == 128 + signal.SIGINT, server.output()  # as for Ctrl-C
        assert server.stderr.read_text() == ""  # no traceback


# ------------------------------------------------------------------------------ Search-R1's corpus layout

def test_search_r1_wiki18_rows_are_read_without_options(tmp_path, tiny_passages):
    path = tmp_path / "wiki-18.jsonl"
    path.write_text("".join(json.dumps({"id": str(n), "contents": f'"{p.title}"\n{p.text}'}) + "\n"
                            for n, p in enumerate(tiny_passages)), encoding="utf-8")
    passages = load_corpus(path)
    assert [(p.id, p.title, p.text) for p in passages] == [(str(n), p.title, p.text)
                                                            for n, p in enumerate(tiny_passages)]


# ------------------------------------------------------------------------------ the other commands

def test_solve_searches_through_the_retriever(tiny_passages, tiny_corpus_file, workdir):
    questions = workdir / "qa.jsonl"
    questions.write_text(json.dumps({"question": "Who designed Harbor Bridge?", "answer": "Ada Marlowe"}) + "\n",
                         encoding="utf-8")
    stand_in = StandIn(tiny_passages)
    with stand_in_server(stand_in) as url:
        result = invoke("solve", "--questions", questions, "--corpus", tiny_corpus_file, "--k", 1,
                        "--out", workdir / "solve", "--retriever", url)
    assert result.exit_code == 0, result.output
    assert stand_in.requests
    [row] = [json.loads(line) for line in (workdir / "solve" / "answers.jsonl").read_text().splitlines()]
    assert row["errors"] == [""]


def test_compile_settings_record_the_retriever_without_its_url():
    from sage_dspy.runs.compile import CompileConfig

    url = "http://user:secret@10.0.0.5:8000/retrieve"
    settings = CompileConfig(retriever=url).to_dict()
    assert settings["retriever"] == "<set>" and "secret" not in json.dumps(settings)
    assert GenerateConfig(retriever=url).to_dict()["retriever_fingerprint"] == settings["retriever_fingerprint"]
