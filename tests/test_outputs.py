"""Where a command may write (sage_dspy/outputs.py): what the rule lets through, beside the refusals of
tests/test_adversarial.py. Sage's own outputs are replaced or resumed as before, folders from before the
marker are still known, and what a user put where sage writes is never removed."""

import json
import shutil
from pathlib import Path

import pytest

from sage_dspy import outputs
from sage_dspy.search.index import META_FILE, SearchIndex
from tests.cli_helpers import assert_one_line_error, invoke
from tests.conftest import TINY_PASSAGES

GENERATE = ("generate", "--no-track", "--seeds", "2", "--targets", "2-3", "--k", "2", "--rounds", "1")


@pytest.fixture
def run(workdir, tiny_corpus_file):
    result = invoke(*GENERATE, "--corpus", tiny_corpus_file, "--out", workdir / "run")
    assert result.exit_code == 0, result.output
    return workdir / "run"


def kept(run: Path) -> Path:
    """The offline LM keeps no pair of the tiny corpus: mark one kept, as a run that kept one would have it."""
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    records[0].update(kept=True, drop_reason="", question=records[0]["question"] or "Who designed Harbor Bridge?")
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_every_output_is_marked_with_its_kind_first(run, workdir):
    assert json.loads((run / outputs.MARKER).read_text()) == {"kind": outputs.RUN}
    assert invoke("export", kept(run), "--out", workdir / "exp", "--splits", "train=1").exit_code == 0
    assert outputs.kind_of(workdir / "exp") == outputs.EXPORT
    questions = workdir / "q.jsonl"
    questions.write_text('{"question": "Who designed Harbor Bridge?", "answer": "Ada Marlowe"}\n')
    result = invoke("solve", "--questions", questions, "--corpus", workdir / "corpus.jsonl", "--k", "1",
                    "--out", workdir / "solved")
    assert result.exit_code == 0, result.output
    assert outputs.kind_of(workdir / "solved") == outputs.SOLVE


def test_a_run_from_before_the_marker_resumes_and_is_marked(run, tiny_corpus_file):
    (run / outputs.MARKER).unlink()
    records = (run / "records.jsonl").read_bytes()
    assert outputs.kind_of(run) == outputs.RUN  # known by config.json holding a run's settings + records.jsonl
    result = invoke(*GENERATE, "--corpus", tiny_corpus_file, "--out", run)
    assert result.exit_code == 0, result.output
    assert (run / "records.jsonl").read_bytes() == records and outputs.kind_of(run) == outputs.RUN
    assert (run / outputs.MARKER).is_file()


@pytest.mark.parametrize("files, kind", [
    ({"config.json": '{"model": "gpt-4o"}'}, None),  # the user's own config is no run
    ({"config.json": '{"model": "gpt-4o"}', "records.jsonl": ""}, None),
    ({"config.json": '{"corpus": "c", "recipe": "sage", "k": 4}', "records.jsonl": ""}, outputs.RUN),
    ({"export.json": '{"runs": [], "formats": {}, "splits": {}}'}, outputs.EXPORT),
    ({"export.json": '{"name": "my export settings"}'}, None),  # a user's own export.json
    ({"store.json": '{"fingerprint": "f", "passages": 3}'}, outputs.INDEX),
    ({"store.json": "{}"}, None),
    ({"answers.jsonl": "", "summary.json": "{}"}, outputs.SOLVE),
    ({"report.md": "", "report.html": ""}, outputs.REPORT),
    ({"program.json": "{}", "config.json": "{}"}, outputs.PROGRAM),
    ({META_FILE: "{}"}, outputs.INDEX),
    ({"notes.md": "# mine"}, None),
])
def test_folders_from_before_the_marker_are_known_by_what_only_sage_writes_together(tmp_path, files, kind):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert outputs.kind_of(tmp_path) == kind


def test_a_report_replaces_an_earlier_report_but_nothing_else(run, workdir):
    kept(run)
    bench = workdir / "bench.json"
    bench.write_text(json.dumps([{"question": "Who designed Harbor Bridge?", "answer": "Ada Marlowe"}]))
    report = workdir / "report.json"
    for _ in range(2):  # the second run replaces the report the first wrote
        result = invoke("decontaminate", run, "-b", bench, "--out", report)
        assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["runs"] == [str(run)]


def test_evaluate_refuses_its_out_before_any_recipe_runs(workdir, tiny_corpus_file):
    taken = workdir / "taken.txt"
    taken.write_text("mine")
    result = invoke("evaluate", "--no-track", "--seeds", "2", "--targets", "2-3", "--k", "2", "--rounds", "1",
                    "--corpus", tiny_corpus_file, "--out", taken)
    assert_one_line_error(result, "is a file")
    assert not (workdir / "artifacts").exists()  # no index built, no recipe run


def test_evaluate_refuses_a_recipes_run_folder_that_is_not_a_run_before_any_recipe_runs(workdir, tiny_corpus_file,
                                                                                       monkeypatch):
    from sage_dspy.runs import evaluate as evaluate_module

    # the folder names carry a settings hash (runs/evaluate.py); short ones here, to block one by hand
    monkeypatch.setattr(evaluate_module, "run_folder_name", lambda config, label: f"corpus-{label}")
    blocked = workdir / "artifacts" / "runs" / "corpus-resample"
    blocked.mkdir(parents=True)
    (blocked / "notes.md").write_text("mine")
    result = invoke("evaluate", "--no-track", "--seeds", "2", "--targets", "2-3", "--k", "2", "--rounds", "1",
                    "--corpus", tiny_corpus_file, "--out", workdir / "report")
    assert_one_line_error(result, "holds files that are not a sage run")
    assert sorted(p.name for p in (workdir / "artifacts" / "runs").iterdir()) == ["corpus-resample"]


def test_an_index_rebuild_keeps_a_run_left_inside_its_folder(workdir):
    """A run placed inside an index folder before this rule: the rebuild refuses rather than remove it."""
    root = workdir / "indexes"
    index = SearchIndex.open(TINY_PASSAGES, root)
    folder = root / index.fingerprint
    shutil.copytree(folder, workdir / "copy")
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({**meta, "format": 1}))  # an older format: it is rebuilt
    (folder / "myrun").mkdir()
    (folder / "myrun" / "records.jsonl").write_text('{"seed_id": "s", "target": 2}\n')
    with pytest.raises(outputs.OutputError, match=r"holds files sage did not write \(myrun\)"):
        SearchIndex.open(TINY_PASSAGES, root)
    assert (folder / "myrun" / "records.jsonl").is_file()
    shutil.rmtree(folder / "myrun")  # moved out: the rebuild goes ahead
    assert len(SearchIndex.open(TINY_PASSAGES, root)) == len(TINY_PASSAGES)
    assert json.loads((folder / META_FILE).read_text()) == meta


def test_a_run_from_before_the_marker_refused_on_resume_stays_as_it_was(run, tiny_corpus_file):
    (run / outputs.MARKER).unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    result = invoke(*GENERATE[:-4], "--k", "3", "--rounds", "1", "--corpus", tiny_corpus_file, "--out", run)
    assert_one_line_error(result, "other settings")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # no marker added either


def test_a_users_own_export_json_above_the_out_folder_blocks_nothing(workdir, tiny_corpus_file):
    (workdir / "export.json").write_text('{"destination": "s3://my-bucket"}')  # a project file, not sage's
    (workdir / "store.json").write_text("{}")
    result = invoke("generate", "--no-track", "--seeds", "1", "--k", "2", "--rounds", "0", "--corpus",
                    tiny_corpus_file, "--out", workdir / "artifacts" / "runs" / "mine")
    assert result.exit_code == 0, result.output
