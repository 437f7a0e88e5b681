"""sage evaluate and sage solve: the table arithmetic on hand-made rounds, the report files, reuse of runs,
evaluate --workers."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sage_dspy.cli.app import app
from sage_dspy.runs.evaluate import as_of_round, find_previous_run, table_by_round
from sage_dspy.runs.evaluate_report import rows, write_report
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.solve import load_questions, summarize_by_hops
from sage_dspy.search.corpus import CorpusError

ENV = {"COLUMNS": "200"}


def round_(verdict: str, searches: int, avg: float) -> dict:
    return {"verdict": verdict, "correct": verdict != "incorrect", "searches": searches, "avg_at_k": avg}


def record(target: int, *rounds: dict, error: str = "") -> dict:
    last = rounds[-1] if rounds else round_("incorrect", -1, 0.0)
    return {"target": target, "error": error, "rounds": list(rounds), "correct": last["correct"],
            "accepted": last["verdict"] == "accepted", "searches": last["searches"], "avg_at_k": last["avg_at_k"],
            "kept": last["verdict"] == "accepted"}


RECORDS = [
    record(3, round_("too_easy", 1, 1.0), round_("accepted", 3, 0.5)),          # accepted after one revision
    record(3, round_("incorrect", -1, 0.0), round_("too_easy", 2, 0.25), round_("accepted", 4, 0.75)),
    record(4, round_("accepted", 5, 1.0)),                                      # accepted at once: stays accepted
    record(4, error="LM failed"),                                               # failed seeds stay out
]


@pytest.mark.parametrize("rounds, correct, accepted, avg, searches", [
    (0, 200 / 3, 100 / 3, (1.0 + 0.0 + 1.0) / 3, (1 + 5) / 2),
    (1, 100.0, 200 / 3, (0.5 + 0.25 + 1.0) / 3, (3 + 2 + 5) / 3),
    (2, 100.0, 100.0, (0.5 + 0.75 + 1.0) / 3, (3 + 4 + 5) / 3),
    (3, 100.0, 100.0, (0.5 + 0.75 + 1.0) / 3, (3 + 4 + 5) / 3),  # past the last round: where it ended
])
def test_table_by_round(rounds, correct, accepted, avg, searches):
    row = table_by_round(RECORDS, 3)[rounds]["overall"]
    assert row["seeds"] == 4 and row["failed"] == 1
    assert row["correct_pct"] == pytest.approx(correct)
    assert row["accepted_pct"] == pytest.approx(accepted)
    assert row["avg_at_k"] == pytest.approx(avg)
    assert row["mean_searches"] == pytest.approx(searches)


def test_as_of_round_keeps_only_pairs_with_two_searches_and_leaves_failures_alone():
    easy_but_accepted = record(1, round_("accepted", 1, 1.0))
    assert as_of_round(easy_but_accepted, 0)["accepted"] and not as_of_round(easy_but_accepted, 0)["kept"]
    assert as_of_round(RECORDS[3], 2) is RECORDS[3]


def test_generator_only_gets_one_row_and_others_one_per_round():
    results = {name: {"by_round": table_by_round(RECORDS, 2), "records": RECORDS, "reused": False, "folder": "x"}
               for name in ("generator_only", "sage")}
    labels = [(recipe, label) for recipe, label, _ in rows(results)]
    assert labels == [("generator_only", "generator"), ("sage", "generator"), ("sage", "+1"), ("sage", "+2")]


def test_report_writes_markdown_and_two_plots(tmp_path):
    results = {"sage": {"by_round": table_by_round(RECORDS, 2), "records": RECORDS, "reused": True,
                        "folder": tmp_path}}
    report = write_report(results, tmp_path / "eval", "header line")
    text = report.read_text()
    assert "| sage | +2 | 100.0 | 100.0 |" in text and "header line" in text and "reused" in text
    for name in ("searches_vs_target.png", "accepted_by_round.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_finished_run_with_the_same_settings_is_found_and_a_different_one_is_not(tmp_path):
    config = GenerateConfig(seeds=3, out_dir=tmp_path / "runs" / "mine")
    folder = tmp_path / "runs" / "mine"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    assert find_previous_run(config, tmp_path / "runs") is None  # not finished: no summary.json yet
    (folder / "summary.json").write_text("{}")
    assert find_previous_run(GenerateConfig(seeds=3, out_dir=tmp_path / "elsewhere"), tmp_path / "runs") == folder
    assert find_previous_run(GenerateConfig(seeds=4), tmp_path / "runs") is None


def test_evaluate_reuses_an_earlier_generate_run(workdir):
    runner = CliRunner()
    common = ["--seeds", "3", "--targets", "2-3", "--rounds", "1", "--k", "2", "--protocol", "paper"]
    first = runner.invoke(app, ["generate", *common, "--out", "artifacts/runs/by-hand", "--no-track"], env=ENV)
    assert first.exit_code == 0, first.output
    result = runner.invoke(app, ["evaluate", *common, "--recipes", "sage,generator_only", "--no-track"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "sage: reused an earlier run" in result.stderr and "generator_only: done" in result.stderr
    (report_folder,) = (workdir / "artifacts" / "evaluations").glob("bundled-3seeds-seed0-*")
    report = (report_folder / "report.md").read_text()
    assert "reused `artifacts/runs/by-hand`" in report
    assert "| generator_only | generator |" in report and "| sage | +1 |" in report


def test_evaluate_with_workers_gives_the_records_of_one_worker_and_reuses_runs_made_with_another_count(
        workdir, monkeypatch):
    common = ["evaluate", "--seeds", "4", "--targets", "2-3", "--rounds", "1", "--k", "2", "--no-track"]
    for workers in (1, 4):
        (workdir / str(workers)).mkdir()
        monkeypatch.chdir(workdir / str(workers))  # evaluate writes under ./artifacts: one each
        result = CliRunner().invoke(app, [*common, "--workers", str(workers)], env=ENV)
        assert result.exit_code == 0, result.output
        assert result.stderr.count(": done") == 3  # every recipe ran, none was reused
    for recipe in ("generator_only", "resample", "sage"):
        one, four = (_records(_only(workdir / workers / "artifacts" / "runs", f"bundled-{recipe}-4seeds-seed0-*"))
                     for workers in "14")
        assert len(one) == 4 and four == one  # seed order and content; only `seconds` may differ
    again = CliRunner().invoke(app, [*common, "--workers", "2"], env=ENV)  # in ./4: --workers is no run setting
    assert again.exit_code == 0, again.output
    assert again.stderr.count(": reused an earlier run") == 3


def _only(root, pattern: str):
    (folder,) = root.glob(pattern)
    return folder


def _records(folder) -> list[dict]:
    return [{key: value for key, value in json.loads(line).items() if key != "seconds"}
            for line in (folder / "records.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("args, expected", [
    (["--recipes", "sage,magic"], "unknown program recipe"),
    (["--targets", "0-3"], "target range"),
])
def test_evaluate_bad_input_is_one_line(workdir, args, expected):
    result = CliRunner().invoke(app, ["evaluate", "--no-track", *args], env=ENV)
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        line for line in result.stderr.splitlines() if expected in line]


def test_questions_load_from_every_shape(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [
        {"id": "a", "question": "Q1?", "answers": ["x", "y"], "hops": 2},
        {"idx": 7, "question": "Q2?", "answer": "z"},
        {"question": "Q3?", "answer": "w", "answer_aliases": ["W"]},
    ]))
    loaded = load_questions(path)
    assert [(q.id, q.answers, q.hops) for q in loaded] == [("a", ("x", "y"), 2), ("7", ("z",), 0),
                                                          ("3", ("w", "W"), 0)]
    assert len(load_questions(path, limit=2)) == 2


@pytest.mark.parametrize("content, expected", [("", "holds no questions"), ("{bad", "line 1 is not valid JSON"),
                                               ('{"question": "Q?"}', "needs 'question' and 'answer'")])
def test_bad_question_files_are_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "q.jsonl"
    path.write_text(content)
    with pytest.raises(CorpusError, match=expected) as error:
        load_questions(path)
    assert "\n" not in str(error.value)


def test_summary_by_hops_orders_hops_and_counts_searches_of_correct_questions_only():
    rows_ = [{"hops": 3, "correct": True, "avg_at_k": 0.5, "searches": 3, "mean_attempt_searches": 3.5},
             {"hops": 2, "correct": False, "avg_at_k": 0.0, "searches": -1, "mean_attempt_searches": 2.0},
             {"hops": 2, "correct": True, "avg_at_k": 1.0, "searches": 2, "mean_attempt_searches": 2.0}]
    summary = summarize_by_hops(rows_)
    assert list(summary) == ["2-hop", "3-hop", "all"]
    assert summary["2-hop"] == {"questions": 2, "pass_at_k": 50.0, "avg_at_k": 0.5, "searches_when_correct": 2.0,
                                "searches_per_attempt": 2.0, "failed": 0}
    assert summary["all"]["searches_when_correct"] == 2.5


def test_solve_command_on_the_tiny_corpus(workdir, tiny_corpus_file):
    questions = workdir / "q.jsonl"
    questions.write_text(json.dumps({"question": 'In the passage on "Harbor Bridge", which name comes right after '
                                                 '"designed by"?', "answers": ["Ada Marlowe"], "hops": 1}) + "\n")
    result = CliRunner().invoke(app, ["solve", "--questions", str(questions), "--corpus", str(tiny_corpus_file),
                                      "--k", "2"], env=ENV)
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in (workdir / "artifacts/solve/latest/answers.jsonl").read_text().splitlines()]
    assert answers[0]["gold"] == ["Ada Marlowe"] and len(answers[0]["answers"]) == 2
    assert "1-hop" in result.stdout


def test_a_run_stopped_by_its_call_budget_is_not_reused(tmp_path):
    config = GenerateConfig(seeds=3)
    folder = tmp_path / "runs" / "partial"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    (folder / "summary.json").write_text(json.dumps({"stopped": "LM-call budget of 10 spent after 1 of 3 seeds"}))
    assert find_previous_run(config, tmp_path / "runs") is None


def test_solve_reports_unparseable_replies_as_failures_not_wrong_answers(workdir, tiny_corpus_file):
    """A loopback server answering text without the adapter's fields (a weak model's reply): every attempt is a
    parse failure, counted by kind with its raw reply and tokens, kept out of pass@K, and the exit code is 1."""
    from sage_dspy.offline.http import ServerConfig
    from server_fixture import in_process_server

    questions = workdir / "q.jsonl"
    questions.write_text("".join(json.dumps({"question": f"Who designed bridge {n}?", "answers": ["Ada Marlowe"],
                                             "hops": 2}) + "\n" for n in range(2)))
    with in_process_server(ServerConfig(fault_rate=1.0, faults=("nomarkers",), idle_exit=120)) as server:
        result = CliRunner().invoke(app, [
            "solve", "--questions", str(questions), "--corpus", str(tiny_corpus_file), "--k", "2",
            "--lm", "openai/weak-model", "--api-base", f"http://127.0.0.1:{server.server_address[1]}/v1",
            "--lm-parse-retries", "1"], env={**ENV, "OPENAI_API_KEY": ""})
    assert result.exit_code == 1, result.output
    assert "every attempt at every question failed (2 of 2 questions unanswered)" in result.stderr
    rows = [json.loads(line) for line in (workdir / "artifacts/solve/latest/answers.jsonl").read_text().splitlines()]
    attempts = [attempt for row in rows for attempt in row["attempts"]]
    assert all(row["failed"] and not row["correct"] for row in rows) and len(attempts) == 4
    assert {a["error_kind"] for a in attempts} == {"AdapterParseError"}
    assert all("I am sorry" in a["raw_reply"] for a in attempts)
    # each reply of the two tries (the first and one parse retry), each a chat reply and its JSON fallback's
    assert all(len(a["raw_replies"]) == 4 and a["raw_replies"][-1] == a["raw_reply"] for a in attempts)
    assert all(row["lm_calls"] > 0 and row["prompt_tokens"] > 0 for row in rows)
    summary = json.loads((workdir / "artifacts/solve/latest/summary.json").read_text())
    assert summary["all_failed"] and summary["hops"]["all"] == {
        "questions": 0, "pass_at_k": 0.0, "avg_at_k": 0.0, "searches_when_correct": 0.0,
        "searches_per_attempt": 0.0, "failed": 2}
    assert summary["failures"]["attempts"] == {"AdapterParseError": 4}
    assert summary["failures"]["parse_failures"]["solver"] == 8  # 2 tries of 4 attempts
    assert summary["usage"]["roles"]["solver"]["lm_calls"] > 0
    assert "failures: attempts {'AdapterParseError': 4}" in result.stdout and "LM use by role" in result.stdout


REAL_REPLIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-llm" / "chat_records.jsonl"


@pytest.mark.skipif(not REAL_REPLIES.is_file(), reason="../shared/data/real-llm is not here")
def test_solve_counts_a_real_small_models_replies_as_failures(workdir, tiny_corpus_file):
    """The replies SmolLM2-135M really wrote (../shared/data/real-llm), replayed by a loopback server in turn:
    none parses under the chat adapter or its JSON fallback, and solve says so instead of scoring them."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    replies = [json.loads(line)["raw_reply"] for line in REAL_REPLIES.read_text(encoding="utf-8").splitlines()]
    served = []

    class Replay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            text = replies[len(served) % len(replies)]
            served.append(text)
            data = json.dumps({"id": "r", "object": "chat.completion", "created": 1, "model": "smollm2",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 900, "completion_tokens": 120, "total_tokens": 1020}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    questions = workdir / "q.jsonl"
    questions.write_text(json.dumps({"question": "Who designed Harbor Bridge?", "answers": ["Ada Marlowe"]}) + "\n")
    try:
        result = CliRunner().invoke(app, [
            "solve", "--questions", str(questions), "--corpus", str(tiny_corpus_file), "--k", "2",
            "--lm", "hosted_vllm/smollm2", "--api-base", f"http://127.0.0.1:{server.server_address[1]}/v1",
            "--lm-parse-retries", "0"], env=ENV)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.output
    [row] = [json.loads(line) for line in (workdir / "artifacts/solve/latest/answers.jsonl").read_text().splitlines()]
    assert row["failed"] and [a["error_kind"] for a in row["attempts"]] == ["AdapterParseError"] * 2
    assert all(reply in replies for a in row["attempts"] for reply in a["raw_replies"])
    assert row["completion_tokens"] > 0
    summary = json.loads((workdir / "artifacts/solve/latest/summary.json").read_text())
    assert summary["hops"]["all"]["failed"] == 1 and summary["hops"]["all"]["questions"] == 0
