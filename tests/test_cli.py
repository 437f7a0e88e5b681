"""`sage generate` through typer's CliRunner, offline, on a small JSONL corpus in tmp_path."""

import json

import pytest

from cli_helpers import assert_one_line_error, invoke

RECORD_KEYS = {
    "seed_id", "seed_title", "target", "answer_type", "question", "answer", "searches", "correct", "pass_at_k",
    "avg_at_k", "accepted", "rounds_used", "supporting_ids", "rounds", "lms", "error", "kept", "drop_reason",
    "seconds",
}
DATASET_KEYS = {"question", "answer", "answer_type", "target", "searches", "supporting_ids", "seed_id", "lms"}


@pytest.fixture
def corpus(tiny_corpus_file):
    return tiny_corpus_file




def generate(corpus, out, *extra):
    # --no-track: each fresh MLflow store costs ~1.5 s of migrations; tracking has its own tests
    return invoke("generate", "--corpus", corpus, "--seeds", 3, "--out", out, "--no-track", *extra)


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_generate_writes_records_dataset_summary_and_prints_the_table(corpus, workdir):
    result = generate(corpus, workdir / "run", "--targets", "2-3", "--seed", 1)  # draws seeds that keep pairs
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output

    records = read_jsonl(workdir / "run" / "records.jsonl")
    assert len(records) == 3
    assert len({r["seed_id"] for r in records}) == 3
    for record in records:
        assert RECORD_KEYS <= set(record), RECORD_KEYS - set(record)
        assert record["error"] == ""
        assert 2 <= record["target"] <= 3 and record["answer_type"] in ("number", "date", "entity")
        assert 1 <= record["rounds_used"] == len(record["rounds"]) <= 4
        assert record["lms"] == {role: "offline/sage-rules-v1" for role in ("generator", "solver", "judge", "reviser")}
        assert record["kept"] == (record["accepted"] and record["drop_reason"] == "")

    dataset = workdir / "run" / "dataset.jsonl"
    rows = read_jsonl(dataset)
    assert len(rows) == sum(r["kept"] for r in records)
    if rows:
        import datasets

        loaded = datasets.load_dataset("json", data_files=str(dataset), split="train",
                                       cache_dir=str(workdir / "hf-cache"))
        assert loaded.num_rows == len(rows) and set(loaded.column_names) == DATASET_KEYS

    summary = json.loads((workdir / "run" / "summary.json").read_text())
    assert summary["overall"]["seeds"] == 3 and summary["corpus"]["passages"] == 8
    assert set(json.loads((workdir / "run" / "config.json").read_text())) >= {"corpus", "seeds", "recipe", "lms"}

    assert "% accepted" in result.stdout and "records:" in result.stdout
    assert "Offline LM" in result.stdout  # numbers from the offline LM are labelled as such
    assert (workdir / "artifacts" / "indexes").is_dir()  # the index cache went to the working folder


def test_generate_is_deterministic(corpus, workdir):
    def run(out):
        assert generate(corpus, workdir / out).exit_code == 0
        rows = read_jsonl(workdir / out / "records.jsonl")
        for row in rows:
            row.pop("seconds")
        return rows

    assert run("first") == run("second")


def test_generate_checks_by_the_chosen_protocol_and_runs_attempts_at_once(corpus, workdir):
    lean = generate(corpus, workdir / "lean", "--workers", 2, "--parallel-attempts")
    paper = generate(corpus, workdir / "paper", "--protocol", "paper")
    assert lean.exit_code == 0 and paper.exit_code == 0, lean.output + paper.output
    assert json.loads((workdir / "paper" / "config.json").read_text())["protocol"] == "paper"
    judged = {a["judged_by"] for r in read_jsonl(workdir / "paper" / "records.jsonl")
              for past in r["rounds"] for a in past["attempts"] if a["answer"] and not a["error"]}
    assert judged == {"lm"}  # the paper's protocol has the LM judge every answer, exact matches included
    assert {r["seed_id"] for r in read_jsonl(workdir / "lean" / "records.jsonl")} == \
           {r["seed_id"] for r in read_jsonl(workdir / "paper" / "records.jsonl")}


@pytest.mark.parametrize("recipe", ["generator_only", "resample"])
def test_generate_runs_every_recipe(corpus, workdir, recipe):
    result = generate(corpus, workdir / recipe, "--recipe", recipe, "--rounds", 1, "--k", 2)
    assert result.exit_code == 0, result.output
    records = read_jsonl(workdir / recipe / "records.jsonl")
    assert len(records) == 3 and all(r["error"] == "" for r in records)
    if recipe == "generator_only":
        assert all(r["rounds_used"] == 1 for r in records)


# ---------------------------------------------------------------------------------------------- bad input

def bad_inputs(workdir, corpus):
    empty = workdir / "empty.jsonl"
    empty.write_text("")
    broken = workdir / "broken.jsonl"
    broken.write_text('{"title": "A", "text": "fine"}\n{"title": "B", "text": \n')
    return {
        "missing corpus": (["--corpus", workdir / "nope.jsonl"], "does not exist"),
        "empty corpus": (["--corpus", empty], "no passages"),
        "malformed jsonl": (["--corpus", broken], "line 2"),
        "unknown field": (["--corpus", corpus, "--text-field", "nope"], "no field 'nope'"),
        "unknown recipe": (["--corpus", corpus, "--recipe", "magic"], "unknown program recipe 'magic'"),
        "unknown lm": (["--corpus", corpus, "--lm", "gpt4"], "unknown LM 'gpt4'"),
        "unknown role lm": (["--corpus", corpus, "--judge-lm", "nonsense"], "unknown LM 'nonsense'"),
        "target zero": (["--corpus", corpus, "--targets", "0-3"], "target range '0-3'"),
        "target above ten": (["--corpus", corpus, "--targets", "3-11"], "target range '3-11'"),
        "target reversed": (["--corpus", corpus, "--targets", "5-2"], "target range '5-2'"),
        "target not a number": (["--corpus", corpus, "--targets", "two"], "target range 'two'"),
        "unknown protocol": (["--corpus", corpus, "--protocol", "fast"], "unknown protocol 'fast'"),
    }


CASES = ["missing corpus", "empty corpus", "malformed jsonl", "unknown field", "unknown recipe", "unknown lm",
         "unknown role lm", "target zero", "target above ten", "target reversed", "target not a number",
         "unknown protocol"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line(workdir, corpus, case):
    args, expected = bad_inputs(workdir, corpus)[case]
    result = invoke("generate", *args, "--seeds", 1, "--out", workdir / "run", "--no-track")
    assert_one_line_error(result, expected)
    assert not (workdir / "run" / "records.jsonl").exists()




def test_bad_input_with_default_tracking_is_still_one_line(workdir, isolated_mlflow):
    result = invoke("generate", "--corpus", workdir / "nope.jsonl", "--seeds", 1, "--out", workdir / "run")
    assert_one_line_error(result, "does not exist")
