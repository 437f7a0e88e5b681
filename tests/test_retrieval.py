"""sage_dspy.search.index against a tiny real bm25s index (no mocks, no LM)."""

import importlib.util
import threading

import sage_dspy  # noqa: F401  (offline env defaults first)

import dspy
import pytest

from sage_dspy.search import index as retrieval
from sage_dspy.search.passages import corpus_fingerprint, Passage
from sage_dspy.search.index import choose_backend, SearchIndex
from sage_dspy.search.passages import format_hits, format_passage, Hit, NO_MATCH, parse_passages
from sage_dspy.search.tool import SearchTool

PASSAGES = [
    Passage("p-eiffel", "Eiffel Tower", "The Eiffel Tower is a wrought-iron lattice tower in Paris, built 1889."),
    Passage("p-louvre", "Louvre", "The Louvre in Paris is the world's most-visited art museum."),
    Passage("p-nile", "Nile", "The Nile is a major north-flowing river in northeastern Africa."),
    Passage("p-amazon", "Amazon River", "The Amazon river in South America is the largest river by discharge."),
    Passage("p-everest", "Mount Everest", "Mount Everest is Earth's highest mountain, in the Himalayas."),
    Passage("p-k2", "K2", "K2 is the second-highest mountain on Earth, in the Karakoram range."),
    Passage("p-curie", "Marie Curie", "Marie Curie was a physicist and chemist who researched radioactivity."),
    Passage("p-darwin", "Charles Darwin", "Charles Darwin was a naturalist known for the theory of evolution."),
    Passage("p-python", "Python (language)", "Python is a programming language created by Guido van Rossum."),
    Passage("p-penguin", "Emperor penguin", "The emperor penguin is the tallest penguin, endemic to Antarctica."),
    Passage("p-tokyo", "Tokyo", "Tokyo is the capital of Japan and its most populous city."),
    Passage("p-sahara", "Sahara", "The Sahara is a desert spanning North Africa, the largest hot desert."),
]


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex.build(PASSAGES)


def ids(hits: list[Hit]) -> list[str]:
    return [hit.passage.id for hit in hits]


# ---------------------------------------------------------------------------------------------- search

@pytest.mark.parametrize("query, expected", [
    ("wrought-iron lattice tower", "p-eiffel"), ("highest mountain Himalayas", "p-everest"),
    ("radioactivity", "p-curie"), ("Guido van Rossum programming", "p-python"),
    ("penguins of Antarctica", "p-penguin"),  # stemmed: penguins -> penguin
    ("capital of Japan", "p-tokyo"),
])
def test_distinctive_query_ranks_the_right_passage_first(index, query, expected):
    hits = index.search(query, k=3)
    assert hits[0].passage.id == expected
    assert [hit.rank for hit in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score > 0 for a, b in zip(hits, hits[1:]))


def test_titles_are_searchable(index):
    assert index.search("Louvre", k=1)[0].passage.id == "p-louvre"


def test_zero_score_passages_are_dropped(index):
    assert ids(index.search("radioactivity", k=10)) == ["p-curie"]


@pytest.mark.parametrize("query", ["", "   \n\t", "the of and is a", "zxqv qqqq", "!!! ???", "a"])
def test_empty_stopword_or_unknown_query_returns_nothing(index, query):
    assert index.search(query) == []


def test_k_is_clamped_to_the_corpus_size():
    small = SearchIndex.build(PASSAGES[2:4] + [Passage("p-x", "River X", "another river")])
    assert sorted(ids(small.search("river", k=50))) == ["p-amazon", "p-nile", "p-x"]
    assert small.search("river", k=0) == []


def test_get_and_len(index):
    assert len(index) == len(PASSAGES) and list(index.passages) == PASSAGES
    assert index.get("p-k2") == PASSAGES[5]
    with pytest.raises(KeyError):
        index.get("p-unknown")


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="unique"):
        SearchIndex.build([Passage("same", "A", "alpha"), Passage("same", "B", "beta")])


def test_backend_choice():
    assert choose_backend(300) == "numpy"
    large = "numba" if importlib.util.find_spec("numba") else "numpy"
    assert choose_backend(retrieval.NUMBA_MIN_PASSAGES) == large


# ---------------------------------------------------------------------------------------------- persistence

QUERIES = ["river Africa", "mountain", "Paris", "capital city", "evolution naturalist"]


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(index, tmp_path, mmap):
    index.save(tmp_path / "idx")
    loaded = SearchIndex.load(tmp_path / "idx", mmap=mmap)
    assert list(loaded.passages) == PASSAGES
    for query in QUERIES:
        assert loaded.search(query, k=4) == index.search(query, k=4)


def test_load_without_an_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sage-dspy search index"):
        SearchIndex.load(tmp_path)


@pytest.fixture
def build_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = SearchIndex.write.__func__

    def counting_write(cls, passages, directory, **sizes):
        calls.append(len(passages))
        return original(cls, passages, directory, **sizes)

    monkeypatch.setattr(SearchIndex, "write", classmethod(counting_write))
    return calls


def test_open_builds_once_and_reuses_the_cache(tmp_path, build_calls):
    first = SearchIndex.open(PASSAGES, root=tmp_path)
    second = SearchIndex.open(PASSAGES, root=tmp_path)
    assert build_calls == [len(PASSAGES)]
    assert [p.name for p in tmp_path.iterdir()] == [corpus_fingerprint(PASSAGES)]  # no staging dirs left
    assert second.search("mountain") == first.search("mountain")


def test_open_rebuilds_when_the_corpus_changes(tmp_path, build_calls):
    SearchIndex.open(PASSAGES, root=tmp_path)
    changed = PASSAGES[:-1] + [Passage("p-sahara", "Sahara", "The Sahara desert is hot and dusty.")]
    reopened = SearchIndex.open(changed, root=tmp_path)
    assert len(build_calls) == 2
    assert reopened.get("p-sahara").text == "The Sahara desert is hot and dusty."
    assert {p.name for p in tmp_path.iterdir()} == {corpus_fingerprint(PASSAGES), corpus_fingerprint(changed)}


def test_open_replaces_a_half_written_index(tmp_path, build_calls):
    broken = tmp_path / corpus_fingerprint(PASSAGES)
    broken.mkdir()
    (broken / "params.index.json").write_text("{}")  # files but no completion marker: never reused
    assert SearchIndex.open(PASSAGES, root=tmp_path).search("Tokyo")[0].passage.id == "p-tokyo"
    assert build_calls == [len(PASSAGES)]


# ---------------------------------------------------------------------------------------------- formatting

def test_format_hits_layout(index):
    hits = index.search("Paris", k=2)
    text = format_hits(hits)
    assert text.startswith(f"[1] {hits[0].passage.title} (id: {hits[0].passage.id})\n{hits[0].passage.text}\n\n[2] ")
    assert format_hits([]) == NO_MATCH


def test_format_hits_and_parse_passages_round_trip(index):
    hits = index.search("river mountain Paris", k=6)
    assert len(hits) == 6
    assert parse_passages(format_hits(hits)) == [hit.passage for hit in hits]
    assert parse_passages(NO_MATCH) == []


def test_parse_format_passage_and_tricky_titles():
    tricky = [Passage("p1", "Python (language)", "Text one."), Passage("x-2", "A (id: fake) B", "Text two.")]
    for passage in tricky:
        assert parse_passages(format_passage(passage)) == [passage]
    joined = "\n\n".join(format_passage(p) for p in tricky)
    assert parse_passages(joined) == tricky


def test_parse_passages_ignores_other_text_and_repeats():
    trajectory = (
        "[[ ## thought_0 ## ]]\nI should search.\n\n[[ ## observation_0 ## ]]\n"
        f"{format_hits([Hit(PASSAGES[0], 2.0, 1), Hit(PASSAGES[1], 1.0, 2)])}\n\n"
        "[[ ## thought_1 ## ]]\nAgain.\n\n[[ ## observation_1 ## ]]\n"
        f"{format_hits([Hit(PASSAGES[1], 3.0, 1), Hit(PASSAGES[2], 1.0, 2)])}\n\n{NO_MATCH}\n"
    )
    assert parse_passages(trajectory) == PASSAGES[:3]


# ---------------------------------------------------------------------------------------------- tool

def test_search_tool_returns_formatted_hits_and_counts_calls(index):
    tool = SearchTool(index)
    assert tool("radioactivity") == format_hits(index.search("radioactivity", 3))
    assert tool("") == NO_MATCH
    assert tool.calls == 2


def test_search_tool_counter_is_thread_safe(index):
    tool = SearchTool(index, k=1)
    threads = [threading.Thread(target=lambda: [tool("Paris tower") for _ in range(25)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tool.calls == 200


@pytest.mark.parametrize("make", [lambda t: dspy.Tool(t), lambda t: t.as_tool()])
def test_dspy_tool_sees_name_args_and_agent_description(index, make):
    tool = SearchTool(index, k=2)
    wrapped = make(tool)
    assert wrapped.name == "search"
    assert wrapped.args == {"query": {"type": "string"}}
    assert wrapped.desc.startswith("Search the document collection") and "up to 2 passages" in wrapped.desc
    assert "\n    " not in wrapped.desc  # dedented for the agent
    assert wrapped(query="Eiffel") == format_hits(index.search("Eiffel", 2))
    assert tool.calls == 1


def test_react_registers_the_tool_as_search(index):
    react = dspy.ReAct("question -> answer", tools=[SearchTool(index)])
    assert set(react.tools) == {"search", "finish"}
