"""A real model's recorded replies behind the offline server's wire: a loopback OpenAI-compatible server that
answers each request with what the model answered to the same request in a recorded run.

    python -m sage_dspy.offline.replay RECORDS.jsonl [--port 0] [--idle-exit 60] [--max-seconds 900] [--log]

RECORDS is a `records.jsonl` of `sage generate` (its trajectories, questions, answers and judge verdicts, or its
`raw_reply` for a seed that failed to parse) or an `answers.jsonl` of `sage solve`. The records keep the
model's decisions rather than its raw text, so each reply is written back as the JSON object those decisions
came from (a tool step, an extract step, a verdict); a failed parse is replayed as the raw text.

Matching: a request is routed to its kind (the generator's or the solver's step or extract, the judge,
the reviser) by the fields its prompt carries, as the offline LM routes them. Within a kind it is matched
by content when the recording has it (the seed id and step number for the generator, the question and step
number for the solver, question and predicted answer for the judge), so a replayed run makes the recorded
run's decisions whatever the order of its calls; anything else (`sage check`'s own small tasks) gets the
kind's recorded replies in turn, cycling. A kind the recording never saw is a 500 naming it: an
infrastructure failure, never a made-up reply. The rest (routes, /stats, stopping by itself) is http.py's.
"""

import argparse
import itertools
import json
import re
import sys
import threading
from pathlib import Path

from sage_dspy.offline.http import ServerConfig, serve
from sage_dspy.offline.prompt import read_prompt
from sage_dspy.offline.wire import read_messages, response_format_of, seed_of

_SEED_ID = re.compile(r"\(id: ([^)\s]+)\)")
_BAD_ARG = re.compile(r"Arg (.+?) is not in the tool's args")
_STEP = re.compile(r"\bthought_(\d+)\b")
PING_REPLY = "ok"


class NoRecordedReply(LookupError):
    """The recording has no reply for this kind of request."""


def kind_of(outputs: set[str], inputs: set[str]) -> str:
    """Which recorded role-step a prompt asks for, from its fields (as offline.engine.respond routes)."""
    if "next_tool_name" in outputs:
        return "generator.step" if "seed_passage" in inputs else "solver.step"
    if "answering_steps" in outputs:
        return "generator.extract"
    if "answer" in outputs and "trajectory" in inputs:
        return "solver.extract"
    if "is_correct" in outputs:
        return "judge"
    if "supporting_passage_id" in outputs:
        return "judge.cite"
    if "revised_question" in outputs:
        return "reviser"
    return "other"


def _tool_args(step: dict) -> dict:
    """The arguments the model gave, as far as the record tells: the query, else the unknown argument the
    tool refused ("Arg type is not in the tool's args"), so the replayed call fails as the recorded one did."""
    if step.get("query"):
        return {"query": step["query"]}
    refused = _BAD_ARG.findall(step.get("observation", ""))
    return {refused[-1]: ""} if refused else {}


def _step_reply(step: dict) -> str:
    return json.dumps({"next_thought": step.get("thought", ""), "next_tool_name": step.get("tool", ""),
                       "next_tool_args": _tool_args(step)})


class Recording:
    """The replies of one recorded run: by kind and content key, and by kind in recorded order."""

    def __init__(self):
        self.keyed: dict[tuple, list[str]] = {}
        self.in_order: dict[str, list[str]] = {}
        self._turns: dict[str, itertools.cycle] = {}
        self._lock = threading.Lock()

    def add(self, kind: str, key: tuple, reply: str) -> None:
        self.keyed.setdefault((kind, *key), []).append(reply)
        self.in_order.setdefault(kind, []).append(reply)

    def reply(self, kind: str, key: tuple) -> str:
        with self._lock:
            matches = self.keyed.get((kind, *key))
            if matches:  # the same request asked again (a retry, another attempt) gets the next, then the last
                return matches.pop(0) if len(matches) > 1 else matches[0]
            if kind not in self.in_order:
                raise NoRecordedReply(f"the recording has no {kind} reply")
            turn = self._turns.setdefault(kind, itertools.cycle(self.in_order[kind]))
            return next(turn)

    @classmethod
    def load(cls, path: Path) -> "Recording":
        recording = cls()
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                (recording._add_solve if "gold" in record else recording._add_generate)(record)
        return recording

    def _add_generate(self, record: dict) -> None:
        if record.get("raw_reply"):  # a seed that failed to parse: its last unparseable reply
            self.add(f"{record.get('failed_in') or 'generator'}.step", (record["seed_id"], 0), record["raw_reply"])
        for past in record.get("rounds", []):
            steps = past.get("generator_steps", [])
            for number, step in enumerate(steps):
                self.add("generator.step", (record["seed_id"], number), _step_reply(step))
            if steps:
                self.add("generator.extract", (record["seed_id"],), json.dumps(
                    {"reasoning": past.get("reasoning", ""), "question": past["question"], "answer": past["answer"],
                     "answering_steps": past.get("answering_steps", [])}))
            for attempt in past.get("attempts", []):
                self._add_attempt(past["question"], attempt.get("steps", []), attempt.get("answer", ""))
                if attempt.get("judged_by") == "lm":
                    self.add("judge", (past["question"], attempt["answer"]),
                             json.dumps({"is_correct": bool(attempt.get("correct"))}))

    def _add_attempt(self, question: str, steps: list[dict], answer: str) -> None:
        for number, step in enumerate(steps):
            self.add("solver.step", (question, number), _step_reply(step))
        self.add("solver.extract", (question,), json.dumps({"reasoning": "", "answer": answer}))

    def _add_solve(self, record: dict) -> None:
        """`sage solve`'s answers keep no trajectory: each attempt is replayed as finishing at once, judged as it
        was (`attempts`); rows from before `attempts` have only the question's pass@K to judge by."""
        attempts = record.get("attempts") or [
            {"answer": answer, "error": error, "correct": record["correct"]}
            for answer, error in zip(record.get("answers", []), record.get("errors", []))]
        for attempt in attempts:
            if not attempt.get("error"):
                self._add_attempt(record["question"], [{"thought": "", "tool": "finish"}], attempt["answer"])
                self.add("judge", (record["question"], attempt["answer"]),
                         json.dumps({"is_correct": bool(attempt.get("correct"))}))


def request_key(kind: str, inputs: dict[str, str], user: str) -> tuple:
    """The content key of a request, as `Recording` files its replies."""
    step = max((int(n) + 1 for n in _STEP.findall(inputs.get("trajectory", user))), default=0)
    if kind == "generator.step":
        return (_first_id(inputs.get("seed_passage", "")), step)
    if kind == "generator.extract":
        return (_first_id(inputs.get("seed_passage", "")),)
    if kind == "solver.step":
        return (inputs.get("question", "").strip(), step)
    if kind == "solver.extract":
        return (inputs.get("question", "").strip(),)
    if kind == "judge":
        return (inputs.get("question", "").strip(), inputs.get("predicted_answer", "").strip())
    return ()


def _first_id(text: str) -> str:
    match = _SEED_ID.search(text)
    return match.group(1) if match else ""


def replier(recording: Recording):
    """The server's `reply(body) -> (text, usage)` for this recording."""

    def reply(body: dict) -> tuple[str, dict]:
        system, user = read_messages(body.get("messages") or [])
        prompt = read_prompt(system, user, seed=seed_of(body), json_mode=response_format_of(body)[0])
        kind = kind_of(set(prompt.output_types), set(prompt.inputs))
        if kind == "other" and not prompt.output_types:
            text = PING_REPLY  # a plain prompt (the preflight's ping): nothing recorded, nothing decided by it
        else:
            text = recording.reply(kind, request_key(kind, prompt.inputs, user))
        prompt_tokens, completion_tokens = (len(system) + len(user)) // 4, len(text) // 4
        return text, {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}

    return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sage_dspy.offline.replay",
                                     description="Replay a recorded run's model replies on 127.0.0.1.")
    parser.add_argument("records", type=Path, help="records.jsonl of sage generate, or answers.jsonl of sage solve")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (printed)")
    parser.add_argument("--idle-exit", type=float, default=60.0, help="stop after this many idle seconds")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop after this many seconds")
    parser.add_argument("--log", action="store_true", help="one JSON line per request on stderr")
    args = parser.parse_args(argv)
    if not args.records.is_file():
        parser.error(f"{args.records}: no such file; give a records.jsonl or answers.jsonl")
    config = ServerConfig(port=args.port, idle_exit=args.idle_exit, max_seconds=args.max_seconds, log=args.log)
    server = serve(config, lambda started: print(json.dumps({"port": started.server_address[1]}), flush=True),
                   reply=replier(Recording.load(args.records)))
    print(json.dumps({"stopped": server.stop_reason or "shutdown"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
