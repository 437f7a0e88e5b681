"""Shared test set-up: offline env defaults, clean DSPy settings per test, no LM cache, a tiny real index."""

import json
import os

import sage_dspy  # noqa: F401  (first: sets the offline environment variables before dspy/datasets load)

import dspy
import pytest

from sage_dspy.search.passages import Passage
from sage_dspy.search.index import SearchIndex

# A chain the agents can walk, one search per passage:
#   Harbor Bridge --"designed by"--> Ada Marlowe --"studied at"--> Corvel Institute --"rector was"--> Tobias Wren
# Corvel Institute states a date ("founded in 1851"), a number ("has 3,400 students") and a name that is no
# title on the path to it (Tobias Wren). Lune Ferry names Harbor Bridge, so a hop can go in front.
# Decoys: like a real corpus, short passages share the phrases that lead to each answer ("founded in",
# "and has", "rector was", "studied at", "traffic in") with other values, so a one-search shortcut on the
# question's last phrase lands on the wrong passage.
TINY_PASSAGES = (
    Passage("p-bridge", "Harbor Bridge",
            "Harbor Bridge is a steel arch bridge over the estuary. It was designed by Ada Marlowe and opened "
            "to traffic in 1932."),
    Passage("p-ada", "Ada Marlowe",
            "Ada Marlowe was an engineer who built railways and bridges. She studied at Corvel Institute before "
            "her first commission."),
    Passage("p-corvel", "Corvel Institute",
            "Corvel Institute is a technical university. It was founded in 1851 and has 3,400 students. Its "
            "first rector was Tobias Wren."),
    Passage("p-tobias", "Tobias Wren", "Tobias Wren was a chemist who studied at Brenna College."),
    Passage("p-ferry", "Lune Ferry",
            "Lune Ferry was a boat service across the estuary. It was replaced by Harbor Bridge when the "
            "crossing opened."),
    Passage("p-brenna", "Brenna College",
            "Brenna College was founded in 1790 and has 900 students. Its first rector was Mira Holt."),
    Passage("p-tunnel", "Oakley Tunnel", "Oakley Tunnel is a road tunnel. It opened to traffic in 1875."),
    Passage("p-river", "River Lune", "The River Lune flows into the estuary near the old harbour and the ferry pier."),
)


@pytest.fixture(autouse=True, scope="session")
def _no_dspy_cache():
    """The cache key ignores the engine, so fakes with one model name would share answers."""
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)


@pytest.fixture(autouse=True)
def _no_sage_environment(monkeypatch):
    """A developer's own SAGE_LM (or any SAGE_* setting) must not change what the tests run."""
    for name in [name for name in os.environ if name.startswith("SAGE_")]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _clean_dspy_settings():
    dspy.configure(lm=None, adapter=None)
    yield
    dspy.configure(lm=None, adapter=None)


@pytest.fixture
def tiny_passages() -> tuple[Passage, ...]:
    return TINY_PASSAGES


@pytest.fixture
def tiny_index(tmp_path) -> SearchIndex:
    """A real bm25s index over the chain above, saved to and loaded back from tmp_path (the production path)."""
    SearchIndex.build(TINY_PASSAGES).save(tmp_path / "tiny-index")
    return SearchIndex.load(tmp_path / "tiny-index")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The CLI writes under ./artifacts: run it inside tmp_path, never in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_corpus_file(workdir, tiny_passages):
    """The tiny corpus as a JSONL file in the working folder, as a user would pass it to the CLI."""
    path = workdir / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n"
                            for p in tiny_passages), encoding="utf-8")
    return path


@pytest.fixture
def isolated_mlflow(monkeypatch):
    """The tracked CLI sets MLflow's globals and exports MLFLOW_TRACKING_URI: undo both after the test."""
    import mlflow

    from mlflow_store import reset_mlflow_globals

    reset_mlflow_globals(monkeypatch)
    yield
    while mlflow.active_run():
        mlflow.end_run()
