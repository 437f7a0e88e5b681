"""`solve`: the search agent alone on real questions with gold answers, scored like the loop scores pairs.

How well does the agent (and the retriever under it) answer real multi-hop questions, and with how many
searches? The paper's strong agent needed about 2.1 searches on HotpotQA and 2.7 on MuSiQue; this gives the
same numbers for any agent, by hop count, beside the difficulty of the pairs we generate.
"""

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sage_dspy.environment import ARTIFACTS
from sage_dspy.jsonl import iter_jsonl, JsonlError
from sage_dspy.search.corpus import CorpusError
from sage_dspy.method.feedback import verdict_for
from sage_dspy.method.judge import AnswerJudge
from sage_dspy.lm.pricing import Price, price_table
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.lm.usage import counting_usage
from sage_dspy.method.failures import JUDGE
from sage_dspy.runs.summary import models_of, usage_summary
from sage_dspy.runs.preflight import check_retriever
from sage_dspy.search.tool import SearchTool, open_searcher
from sage_dspy.method.solver import Solver
from sage_dspy.outputs import SOLVE, mark
from sage_dspy.redact import redact


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]  # the first is the gold answer, the rest aliases
    hops: int  # 0 when the file does not say


@dataclass
class SolveConfig:
    questions: Path
    lms: dict[str, str] = field(default_factory=lambda: {"solver": "offline", "judge": "offline"})
    lm_options: dict = field(default_factory=dict)  # every role (see GenerateConfig)
    role_options: dict[str, dict] = field(default_factory=dict)  # one role: api_base, temperature, max_tokens
    k: int = 4
    limit: int | None = None
    out_dir: Path = ARTIFACTS / "solve" / "latest"
    retriever: str = ""  # a retrieval server's URL; "" searches the embedded index


def load_questions(path: Path, limit: int | None = None) -> list[Question]:
    """JSONL of {question, answers | answer | answer_aliases, hops?, id | idx?}: qa.jsonl and the benchmark files."""
    if not path.is_file():
        raise CorpusError(f"questions file {path} does not exist; pass a JSONL file of questions with answers")
    questions = []
    try:
        rows = iter_jsonl(path, label="questions file", shape_fix='write one {"question": ..., "answer": ...} per line')
        for number, row in enumerate(rows, start=1):  # the number is the id of a question without one
            questions.append(_question(path, number, row))
            if limit and len(questions) >= limit:
                break
    except JsonlError as error:
        raise CorpusError(str(error)) from None
    if not questions:
        raise CorpusError(f"questions file {path} holds no questions")
    return questions


def _question(path: Path, number: int, row: dict) -> Question:
    """One question of the file; `number` (its place) names it in errors."""
    answers = row.get("answers") or row.get("answer") or []
    answers = [answers] if isinstance(answers, str) else list(answers)
    answers += [a for a in row.get("answer_aliases", []) if a not in answers]
    if not row.get("question") or not answers:
        raise CorpusError(f"questions file {path}: line {number} needs 'question' and 'answer' or 'answers'")
    return Question(str(row.get("id", row.get("idx", number))), row["question"],
                    tuple(str(a) for a in answers), int(row.get("hops") or 0))


def solve_one(solver: Solver, judge: AnswerJudge, lms: RoleLMs, item: Question, k: int) -> dict:
    """One question's row: its verdict over the attempts that answered, each attempt as the agent left it
    (failures with their kind and raw reply), and the LM calls and tokens it took per role."""
    with counting_usage() as spent:
        with lms.use("solver"):
            attempts = solver.attempt(item.question, k=k)
        with lms.use("judge"):
            attempts = [judge.grade(item.question, item.answers[0], a, aliases=item.answers[1:]) for a in attempts]
    answered = [a for a in attempts if not a.error_kind]
    verdict = verdict_for(answered, target=0) if answered else None
    return {"id": item.id, "question": item.question, "gold": list(item.answers), "hops": item.hops,
            "failed": verdict is None,  # every attempt failed: no answer to score, never a wrong one
            "correct": bool(verdict and verdict.correct), "avg_at_k": verdict.avg_at_k if verdict else 0.0,
            "searches": verdict.searches if verdict and verdict.searches is not None else -1,
            "mean_attempt_searches": sum(a.searches for a in attempts) / len(attempts),
            "answers": [a.answer for a in attempts], "errors": [a.error or "" for a in attempts],
            "attempts": [{"answer": a.answer, "correct": a.correct, "searches": a.searches, "error": a.error or "",
                          "error_kind": a.error_kind, "failed_in": a.failed_in, "raw_reply": a.raw_reply,
                          "raw_replies": list(a.raw_replies)}
                         for a in attempts],
            **spent}


def summarize_by_hops(rows: list[dict]) -> dict[str, dict]:
    """pass@K, Avg@K, and searches (fewest among correct attempts; mean over all attempts) per hop count, over
    the questions an attempt answered; `failed` counts those where every attempt failed."""
    groups = defaultdict(list)
    for row in rows:
        groups[f"{row['hops']}-hop" if row["hops"] else "unknown"].append(row)
    ordered = sorted(groups, key=lambda name: (name == "unknown", int(name.split("-")[0]) if name[0].isdigit() else 0))
    groups = {name: groups[name] for name in ordered} | {"all": rows}
    summary = {}
    for name, every in groups.items():
        group = [r for r in every if not r.get("failed")]
        correct = [r for r in group if r["correct"]]
        answered = max(len(group), 1)
        summary[name] = {
            "questions": len(group),
            "pass_at_k": 100.0 * len(correct) / answered,
            "avg_at_k": sum(r["avg_at_k"] for r in group) / answered,
            "searches_when_correct": sum(r["searches"] for r in correct) / len(correct) if correct else 0.0,
            "searches_per_attempt": sum(r["mean_attempt_searches"] for r in group) / answered,
            "failed": len(every) - len(group),
        }
    return summary


def solve_failures(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Failed attempts by kind (a judge's failure named as such) and unparseable replies per role, as
    generate counts them."""
    attempts, parses = Counter(), Counter()
    for row in rows:
        for attempt in row.get("attempts", []):
            if attempt.get("error_kind"):
                kind = attempt["error_kind"]
                attempts[f"judge failed: {kind}" if attempt.get("failed_in") == JUDGE else kind] += 1
        for usage in row.get("lm_usage", []):
            if usage.get("parse_failures"):
                parses[usage["role"]] += usage["parse_failures"]
    return {"attempts": dict(attempts), "parse_failures": dict(parses)}


def solve(config: SolveConfig, passages, on_row=None,
          prices: dict[str, Price] | None = None) -> tuple[list[dict], dict]:
    """Every question through the agent and the judge; answers.jsonl (a row per question, as it finishes) and
    summary.json: per hop count, failures by kind, LM use and cost per role (at `prices` over the bundled map),
    and `all_failed` when no attempt answered at all."""
    questions = load_questions(config.questions, config.limit)
    check_retriever(config.retriever)  # before any LM call
    index = open_searcher(passages, config.retriever)
    lms = RoleLMs.from_specs(config.lms, role_options=config.role_options, **config.lm_options)
    solver, judge = Solver(SearchTool(index)), AnswerJudge()
    rows = []
    mark(config.out_dir, SOLVE)
    with (config.out_dir / "answers.jsonl").open("w", encoding="utf-8") as sink:
        for item in questions:
            row = solve_one(solver, judge, lms, item, config.k)
            rows.append(row)
            sink.write(json.dumps(redact(row), ensure_ascii=False) + "\n")
            sink.flush()
            if on_row:
                on_row(row)
    in_use = {**price_table(lms.ids().values(), prices), **price_table(models_of(rows), prices)}
    summary = {"hops": summarize_by_hops(rows), "failures": solve_failures(rows),
               "usage": usage_summary([{**row, "accepted": 0} for row in rows], in_use),
               "all_failed": bool(rows) and all(row["failed"] for row in rows)}
    (config.out_dir / "summary.json").write_text(json.dumps(redact(summary), indent=2), encoding="utf-8")
    return rows, summary
