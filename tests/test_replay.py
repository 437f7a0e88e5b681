"""The replay server (sage_dspy.offline.replay): a real 135M model's recorded replies (../shared/data/real-llm)
answered on 127.0.0.1, through `sage generate` as a user runs it. Skipped when the shared data is absent."""

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, invoke
from sage_dspy.offline.http import ServerConfig
from sage_dspy.offline.replay import Recording, replier
from server_fixture import in_process_server

REAL_LLM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-llm"
needs_recordings = pytest.mark.skipif(not (REAL_LLM / "schema_records.jsonl").is_file(),
                                      reason="../shared/data/real-llm is not here")


def replay(name: str):
    """An in-process replay server of one recording; yields its api_base."""
    return in_process_server(ServerConfig(idle_exit=120), reply=replier(Recording.load(REAL_LLM / name)))


def api_base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


@needs_recordings
def test_the_garbage_pair_of_issue_23_is_replayed_and_dropped_with_its_reason(workdir):
    """The recorded run kept seed w099 (target 2, 10 failed solver searches, the same model judging); replayed,
    the run makes the same decisions and the pair is dropped: none of those searches retrieved anything, so none
    is counted (0 searches: too easy), and its generator never retrieved a passage either (the grounding rule,
    tested on its own in test_feedback.py, would drop it next)."""
    with replay("schema_records.jsonl") as server:
        result = invoke(*replayed_run(server, workdir), "--allow-weak-judge")
    assert result.exit_code == 0, result.output
    records = {r["seed_id"]: r for r in map(json.loads, (workdir / "run" / "records.jsonl").read_text().splitlines())}
    garbage = records["w099"]
    assert garbage["answer"].startswith("[#description of question] #outputJSON (")  # the recorded reply
    # what the recorded run's judge said (the target is the seed stream's now, not the recorded run's 2: #23 item 5)
    assert garbage["correct"] and garbage["target"] >= 2
    failed = [s for past in garbage["rounds"] for a in past["attempts"] for s in a["steps"] if s["tool"] == "search"]
    assert failed and garbage["searches"] == 0  # ...but its failed searches are no longer counted
    assert not garbage["kept"] and garbage["drop_reason"] == "too easy"
    assert "dropped: too easy" in result.stdout
    assert (workdir / "run" / "dataset.jsonl").read_text() == ""
    # the judge that said "correct" to garbage fails calibration: the run went on only because it was told to
    assert "WEAK JUDGE: hosted_vllm/smollm2 got 3 of 6 calibration items right" in result.stdout
    assert "note: the judge is hosted_vllm/smollm2, the solver's own model" in result.stderr
    calibration = json.loads((workdir / "run" / "summary.json").read_text())["judge_calibration"]
    assert calibration["passed"] is False and (calibration["right"], calibration["items"]) == (3, 6)


@needs_recordings
def test_the_real_models_judge_stops_the_run_before_any_seed(workdir):
    with replay("schema_records.jsonl") as server:
        result = invoke(*replayed_run(server, workdir))
        completions = server.stats.completions
    assert_one_line_error(result, "the judge LM 'hosted_vllm/smollm2' got 3 of 6 calibration items right (wrong: "
                                  "'1790' for '1851' (different): said correct;")
    assert result.stderr.strip().endswith("pass a stronger --judge-lm, or --allow-weak-judge to run anyway")
    # the reachability ping and the six items, each twice (the recorded JSON fails the chat adapter, then its JSON
    # fallback reads it): no seed ran
    assert completions == 1 + 2 * 6
    assert not (workdir / "run" / "records.jsonl").exists() or not (workdir / "run" / "records.jsonl").read_text()


def replayed_run(server, workdir) -> list:
    return ["generate", "--corpus", "bundled", "--seeds", 2, "--k", 1, "--rounds", 0, "--lm", "hosted_vllm/smollm2",
            "--api-base", api_base(server), "--out", workdir / "run", "--no-track"]


@needs_recordings
def test_requests_are_matched_by_content_then_by_turn_and_an_unrecorded_kind_is_a_500():
    with replay("schema_records.jsonl") as server:
        def ask(system: str, user: str) -> tuple[int, str]:
            body = json.dumps({"model": "m", "messages": [{"role": "system", "content": system},
                                                          {"role": "user", "content": user}]}).encode()
            request = urllib.request.Request(api_base(server) + "/chat/completions", body,
                                             {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    return 200, json.loads(reply.read())["choices"][0]["message"]["content"]
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        judge = ("Your input fields are:\n1. `question` (str)\n2. `gold_answer` (str)\n3. `predicted_answer` (str)\n"
                 "Your output fields are:\n1. `is_correct` (bool)\nAll interactions will be structured")
        reviser = ("Your input fields are:\n1. `question` (str)\nYour output fields are:\n1. `revised_question` "
                   "(str)\nAll interactions will be structured")
        assert ask(judge, "[[ ## question ## ]]\nAnything?\n\n[[ ## predicted_answer ## ]]\nx") == \
            (200, '{"is_correct": true}')  # the recorded judge said "correct" to garbage: replayed as it was
        assert ask("", "Reply with the word ok.") == (200, "ok")
        status, text = ask(reviser, "[[ ## question ## ]]\nq")
    assert status == 500 and "no reviser reply" in text


@needs_recordings
def test_a_recorded_parse_failure_is_replayed_as_the_raw_text():
    recording = Recording.load(REAL_LLM / "chat_records.jsonl")
    first = json.loads((REAL_LLM / "chat_records.jsonl").read_text().splitlines()[0])
    assert recording.reply("generator.step", ("nowhere", 0)) == first["raw_reply"]
    assert set(recording.in_order) == {"generator.step"}


def test_a_solve_recording_replays_each_attempts_own_verdict():
    """With K=2, one right answer and one wrong: the wrong one is replayed as judged wrong, not with the
    question's pass@K."""
    recording = Recording()
    recording._add_solve({"question": "Who designed Harbor Bridge?", "correct": True,
                          "answers": ["Ada Marlowe", "Tobias Wren"], "errors": ["", ""],
                          "attempts": [{"answer": "Ada Marlowe", "correct": True, "error": ""},
                                       {"answer": "Tobias Wren", "correct": False, "error": ""}]})
    question = "Who designed Harbor Bridge?"
    assert json.loads(recording.reply("judge", (question, "Ada Marlowe"))) == {"is_correct": True}
    assert json.loads(recording.reply("judge", (question, "Tobias Wren"))) == {"is_correct": False}
