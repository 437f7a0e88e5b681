"""Which retriever a run searched (search/identity.py): the index behind the URL, told by `sage serve-index` or
read from a foreign server's answers, recorded and compared on resume; the URL compared up to spelling;
passages whose ids agree with the server's; serve-index's corpus options and request caps (search/server.py)."""

import hashlib
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from cli_helpers import assert_one_line_error, invoke
from retriever_fixture import StandIn, index_in_thread, serve_index, stand_in_server
from sage_dspy.method.trajectory import passages_seen, Step
from sage_dspy.search.corpus import PASSAGE_WORDS
from sage_dspy.search.corpus_index import open_corpus, open_corpus_index, open_corpus_store
from sage_dspy.search.identity import canonical_url, PROBE_PREFIX, read_index_identity, url_fingerprint
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.passages import Passage
from sage_dspy.search.remote import RemoteIndex
from sage_dspy.search.server import Limits

GENERATE = ("generate", "--no-track", "--seeds", "2", "--targets", "2-3", "--k", "2", "--rounds", "1")


def write_corpus(path, passages, fields=("id", "title", "text")):
    path.write_text("".join(json.dumps(dict(zip(fields, (p.id, p.title, p.text)))) + "\n" for p in passages),
                    encoding="utf-8")
    return path


def snapshot(folder) -> dict:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def port_of(url: str) -> int:
    return urllib.parse.urlsplit(url).port


def without_timing(path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------ the URL, up to spelling

@pytest.mark.parametrize("spelling", ["http://localhost:8000/retrieve", "http://LOCALHOST:8000/retrieve/",
                                      "HTTP://127.0.0.1:8000/retrieve", "http://[::1]:8000/retrieve"])
def test_host_aliases_case_and_a_trailing_slash_are_one_url(spelling):
    assert url_fingerprint(spelling) == url_fingerprint("http://127.0.0.1:8000/retrieve")


@pytest.mark.parametrize("url, default", [("http://search.lan/retrieve", "http://search.lan:80/retrieve"),
                                          ("https://search.lan/retrieve", "https://search.lan:443/retrieve")])
def test_a_default_port_is_the_port(url, default):
    assert canonical_url(url) == canonical_url(default) == default


@pytest.mark.parametrize("other", ["http://127.0.0.1:8001/retrieve", "http://127.0.0.2:8000/retrieve",
                                   "http://127.0.0.1:8000/search", "https://127.0.0.1:8000/retrieve",
                                   "http://127.0.0.1:8000/retrieve?index=b"])
def test_another_port_host_path_scheme_or_query_is_another_url(other):
    assert url_fingerprint(other) != url_fingerprint("http://127.0.0.1:8000/retrieve")


# ------------------------------------------------------------------------------ the index behind it

def test_serve_index_names_its_index_and_a_foreign_server_is_known_by_its_answers(tiny_passages):
    index = SearchIndex.build(tiny_passages)
    with index_in_thread(index) as url:
        ours = read_index_identity(url)
    assert ours.value == index.fingerprint and ours.served_by_sage
    tight = Limits(max_topk=3, max_queries=4, max_results=12)  # caps below the twelve probe queries at topk 5
    with index_in_thread(index, limits=tight) as url:
        assert read_index_identity(url) == ours

    with stand_in_server(StandIn(tiny_passages)) as url:
        foreign, again = read_index_identity(url), read_index_identity(url)
    assert foreign.value.startswith(PROBE_PREFIX) and not foreign.served_by_sage and foreign == again
    renumbered = StandIn(tiny_passages)
    renumbered.ids = {key: f"doc-{value}" for key, value in renumbered.ids.items()}
    with stand_in_server(renumbered) as url:
        assert read_index_identity(url).value not in ("", foreign.value)
    with stand_in_server(StandIn(tiny_passages[:-1])) as url:  # one passage fewer: "river" finds another set
        assert read_index_identity(url).value not in ("", foreign.value)


def test_an_identity_that_cannot_be_read_is_unknown_never_a_crash(tiny_passages):
    nothing = StandIn([Passage("x", "Quartz", "Quartz is a mineral.")])
    with stand_in_server(nothing) as url:
        unknown = read_index_identity(url)
    assert unknown.value == "" and "found nothing" in unknown.problem and not unknown.fault
    with stand_in_server(StandIn(tiny_passages, fault="500")) as url:
        failed = read_index_identity(url, timeout=2)
    assert failed.value == "" and failed.fault and "500" in failed.problem


def test_a_second_index_behind_the_same_url_is_refused_on_resume(tiny_passages, workdir):
    corpus = write_corpus(workdir / "corpus.jsonl", tiny_passages)
    first, second = SearchIndex.build(tiny_passages), SearchIndex.build(tiny_passages[:-1])
    run = workdir / "run"
    with index_in_thread(first) as url:
        started = invoke(*GENERATE, "--corpus", corpus, "--out", run, "--retriever", url)
        assert started.exit_code == 0, started.output
    assert json.loads((run / "config.json").read_text())["retriever_index"] == first.fingerprint
    (run / "summary.json").unlink()  # as a run stopped part-way leaves it
    before = snapshot(run)
    with index_in_thread(second, port_of(url)):
        refused = invoke(*GENERATE, "--corpus", corpus, "--out", run, "--retriever", url)
    assert_one_line_error(refused, f"made against another index behind --retriever (index {first.fingerprint} "
                                   f"then, {second.fingerprint} now)")
    assert snapshot(run) == before
    with index_in_thread(first, port_of(url)):
        resumed = invoke(*GENERATE, "--corpus", corpus, "--out", run, "--retriever",
                         url.replace("127.0.0.1", "localhost"))
    assert resumed.exit_code == 0, resumed.output


def test_a_folder_recorded_with_the_url_alone_still_resumes(tiny_passages, workdir):
    corpus = write_corpus(workdir / "corpus.jsonl", tiny_passages)
    index = SearchIndex.build(tiny_passages)
    run = workdir / "run"
    with index_in_thread(index) as url:
        spelt = url.replace("127.0.0.1", "localhost")  # a spelling whose new fingerprint differs from the old
        assert invoke(*GENERATE, "--corpus", corpus, "--out", run, "--retriever", spelt).exit_code == 0
        settings = json.loads((run / "config.json").read_text())
        del settings["retriever_index"]  # what a run recorded before: the URL as typed, hashed
        settings["retriever_fingerprint"] = hashlib.sha256(spelt.encode()).hexdigest()[:12]
        (run / "config.json").write_text(json.dumps(settings))
        records = (run / "records.jsonl").read_bytes()
        resumed = invoke(*GENERATE, "--corpus", corpus, "--out", run, "--retriever", spelt)
    assert resumed.exit_code == 0, resumed.output
    assert (run / "records.jsonl").read_bytes() == records  # nothing redone
    upgraded = json.loads((run / "config.json").read_text())
    assert upgraded["retriever_index"] == index.fingerprint and upgraded["retriever_fingerprint"] == url_fingerprint(url)


# ------------------------------------------------------------------------------ passages keep the server's ids

def long_document() -> Passage:
    words = " ".join(f"Harbor Bridge carries rail traffic over span {n} of the estuary." for n in range(30))
    assert len(words.split()) > PASSAGE_WORDS
    return Passage("doc-long", "Harbor Bridge Spans", words)


def test_a_corpus_split_locally_is_refused_against_a_server_of_whole_documents(tiny_passages, workdir):
    whole = [*tiny_passages, long_document()]
    corpus = write_corpus(workdir / "corpus.jsonl", whole)
    with stand_in_server(StandIn(whole)) as url:  # Search-R1's server: documents as given, under their ids
        refused = invoke(*GENERATE, "--corpus", corpus, "--out", workdir / "run", "--retriever", url)
    assert_one_line_error(refused, f"has 1 text(s) longer than {PASSAGE_WORDS} words, which sage splits")
    assert not (workdir / "run").exists()
    short = write_corpus(workdir / "short.jsonl", tiny_passages)  # wiki-18's case: every text one passage
    with stand_in_server(StandIn(tiny_passages)) as url:
        assert list(open_corpus(short, retriever=url, root=workdir / "indexes")) == list(tiny_passages)


def test_against_serve_index_the_seeds_and_the_agents_evidence_share_ids(tiny_passages, workdir):
    corpus = write_corpus(workdir / "corpus.jsonl", [*tiny_passages, long_document()])
    index = open_corpus_index(corpus, root=workdir / "served")  # what `sage serve-index --corpus` serves
    local = {p.id for p in open_corpus_store(corpus, root=workdir / "indexes") if not p.id.startswith("p-")}
    assert len(local) > 1  # the long document became several passages under content ids
    with index_in_thread(index) as url:
        every = str(len(index.passages))  # every passage a seed: the long document's chunks among them
        result = invoke(*GENERATE[:3], every, *GENERATE[4:], "--corpus", corpus, "--out", workdir / "run",
                        "--retriever", url)
    assert result.exit_code in (0, 1), result.output
    records = [json.loads(line) for line in (workdir / "run" / "records.jsonl").read_text().splitlines()]
    seen = {p.id for r in records for past in r["rounds"]
            for p in passages_seen([Step(**s) for s in past["generator_steps"]])}
    assert seen and seen <= {p.id for p in index.passages}
    seeds = {r["seed_id"] for r in records}
    assert local <= seeds <= {p.id for p in index.passages}  # the chunks' ids are the server's


# ------------------------------------------------------------------------------ serve-index's corpus options

def test_serve_index_with_field_options_gives_the_records_of_local_search(tiny_passages, workdir):
    fields = ("key", "heading", "body")
    corpus = write_corpus(workdir / "custom.jsonl", tiny_passages, fields)
    options = ("--text-field", "body", "--title-field", "heading", "--id-field", "key")
    common = (*GENERATE, "--corpus", corpus, *options)
    local = invoke(*common, "--out", workdir / "local")
    assert local.exit_code == 0, local.output
    with serve_index(corpus, workdir / "server", *options) as server:
        remote = RemoteIndex(server.url)
        embedded = open_corpus_index(corpus, root=workdir / "indexes", text_field="body", title_field="heading",
                                     id_field="key")
        for query in ("Harbor Bridge", "Corvel Institute rector", "estuary ferry", "Tobias Wren chemist"):
            assert remote.search(query, 3) == embedded.search(query, 3)
        served = invoke(*common, "--out", workdir / "served", "--retriever", server.url)
    assert served.exit_code == 0, served.output
    assert without_timing(workdir / "served" / "records.jsonl") == without_timing(workdir / "local" / "records.jsonl")
    assert {h.passage.id for h in embedded.search("Harbor Bridge", 3)} <= {p.id for p in tiny_passages}


# ------------------------------------------------------------------------------ serve-index's caps

def status_of(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def chunked_status(url: str, body: bytes) -> int:
    """The status of a POST whose body comes chunked, with no Content-Length to check beforehand."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("POST", parts.path, body=iter([body[:100], body[100:]]),
                       headers={"Content-Type": "application/json"}, encode_chunked=True)
    status = connection.getresponse().status
    connection.close()
    return status


@pytest.mark.parametrize("request_body, status, said", [
    ({"queries": ["Harbor Bridge"], "topk": 0}, 422, "topk 0 is not within 1..5 (serve-index --max-topk)"),
    ({"queries": ["Harbor Bridge"], "topk": -3}, 422, "topk -3 is not within 1..5"),
    ({"queries": ["Harbor Bridge"], "topk": 6}, 422, "topk 6 is not within 1..5"),
    ({"queries": ["Harbor Bridge"] * 5}, 413, "5 queries in one request; this server takes at most 4"),
    ({"queries": ["Harbor Bridge"] * 3, "topk": 5}, 413, "3 queries at topk 5 ask for 15 documents; this server "
                                                         "returns at most 12 a request (serve-index --max-results)"),
    ({"queries": ["Harbor Bridge " * 40]}, 413, "the request body is over 400 bytes (serve-index --max-body-bytes)"),
])
def test_requests_beyond_the_caps_are_refused_before_any_search(tiny_passages, request_body, status, said):
    with index_in_thread(SearchIndex.build(tiny_passages), limits=Limits(4, 5, 400, max_results=12)) as url:
        code, reply = status_of(url, json.dumps(request_body).encode())
        assert code == status and reply["detail"].startswith(said)
        assert status_of(url, json.dumps({"queries": ["Harbor Bridge"] * 4, "topk": 3}).encode())[0] == 200


def test_a_chunked_body_beyond_the_cap_is_refused_as_it_comes(tiny_passages):
    with index_in_thread(SearchIndex.build(tiny_passages), limits=Limits(max_body_bytes=400)) as url:
        assert chunked_status(url, json.dumps({"queries": ["Harbor Bridge " * 40]}).encode()) == 413
        assert chunked_status(url, json.dumps({"queries": ["Harbor Bridge"] * 2}).encode()) == 200


def test_the_default_caps_take_search_r1s_training_batch():
    limits = Limits()  # train_ppo.sh: 512 prompts x 5 rollouts in one request, topk 3, queries of ~100 words
    assert limits.max_queries >= 512 * 5 and limits.max_topk >= 3 and limits.max_results >= 512 * 5 * 3
    assert len(json.dumps({"queries": ["word " * 100] * 2560, "topk": 3}).encode()) < limits.max_body_bytes


def test_a_retriever_url_with_credentials_is_refused_without_repeating_them(tiny_passages, workdir):
    corpus = write_corpus(workdir / "corpus.jsonl", tiny_passages)
    result = invoke(*GENERATE, "--corpus", corpus, "--retriever", "http://alice:s3cret-pass@127.0.0.1:9/retrieve")
    assert_one_line_error(result, "--retriever carries credentials")
    assert "s3cret" not in result.output and "alice" not in result.output
