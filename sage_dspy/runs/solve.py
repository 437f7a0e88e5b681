"""`solve`: the search agent alone on real questions with gold answers, scored like the loop scores pairs.

How well does the agent (and the retriever under it) answer real multi-hop questions, and with how many
searches? The paper's strong agent needed about 2.1 searches on HotpotQA and 2.7 on MuSiQue; this gives the
same numbers for any agent, by hop count, beside the difficulty of the pairs we generate.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sage_dspy.environment import ARTIFACTS
from sage_dspy.jsonl import iter_jsonl, JsonlError
from sage_dspy.search.corpus import CorpusError
from sage_dspy.method.feedback import verdict_for
from sage_dspy.method.judge import AnswerJudge
from sage_dspy.lm.roles import RoleLMs
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
    with lms.use("solver"):
        attempts = solver.attempt(item.question, k=k)
    with lms.use("judge"):
        attempts = [judge.grade(item.question, item.answers[0], a, aliases=item.answers[1:]) for a in attempts]
    verdict = verdict_for(attempts, target=0)
    return {"id": item.id, "question": item.question, "gold": list(item.answers), "hops": item.hops,
            "correct": verdict.correct, "avg_at_k": verdict.avg_at_k,
            "searches": verdict.searches if verdict.searches is not None else -1,
            "mean_attempt_searches": sum(a.searches for a in attempts) / len(attempts),
            "answers": [a.answer for a in attempts], "errors": [a.error or "" for a in attempts]}


def summarize_by_hops(rows: list[dict]) -> dict[str, dict]:
    """pass@K, Avg@K, and searches (fewest among correct attempts; mean over all attempts) per hop count."""
    groups = defaultdict(list)
    for row in rows:
        groups[f"{row['hops']}-hop" if row["hops"] else "unknown"].append(row)
    ordered = sorted(groups, key=lambda name: (name == "unknown", int(name.split("-")[0]) if name[0].isdigit() else 0))
    groups = {name: groups[name] for name in ordered} | {"all": rows}
    summary = {}
    for name, group in groups.items():
        correct = [r for r in group if r["correct"]]
        summary[name] = {
            "questions": len(group),
            "pass_at_k": 100.0 * len(correct) / len(group),
            "avg_at_k": sum(r["avg_at_k"] for r in group) / len(group),
            "searches_when_correct": sum(r["searches"] for r in correct) / len(correct) if correct else 0.0,
            "searches_per_attempt": sum(r["mean_attempt_searches"] for r in group) / len(group),
        }
    return summary


def solve(config: SolveConfig, passages, on_row=None) -> tuple[list[dict], dict]:
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
            if on_row:
                on_row(row)
    summary = summarize_by_hops(rows)
    (config.out_dir / "summary.json").write_text(json.dumps(redact(summary), indent=2), encoding="utf-8")
    return rows, summary

