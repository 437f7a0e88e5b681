"""Measured: real benchmark questions planted among generated pairs, exactly and with light edits, are
flagged (recall per edit kind); genuine generated pairs, and real multi-hop questions from train splits
that no benchmark holds, are not (false positives). Run with -s to see the figures:

    .venv/bin/python -m pytest -q -s tests/test_decontamination_recall.py
"""

import json
import random
import re
from pathlib import Path

import pytest

from sage_dspy.dataset.benchmarks import load_benchmark
from sage_dspy.dataset.decontaminate import CHECKS, SAME_ANSWER, find_contamination
from sage_dspy.runs.config import GenerateConfig
from sage_dspy.runs.generate import generate

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCHMARKS = ("hotpotqa_500", "2wiki_500", "musique_500", "bamboogle", "frames_824")
pytestmark = pytest.mark.skipif(not (SHARED_DATA / "benchmarks").is_dir(), reason="shared data not present")
PER_BENCHMARK = 40  # items planted per benchmark and edit kind: 200 per kind
REPLACEMENTS = ("famous", "former", "first", "main", "old", "other")


def change_a_word(question: str, rng: random.Random) -> str:
    words = question.split()
    at = rng.randrange(1, len(words))
    words[at] = rng.choice([w for w in REPLACEMENTS if w != words[at].lower()])
    return " ".join(words)


def drop_a_word(question: str, rng: random.Random) -> str:
    words = question.split()
    del words[rng.randrange(1, len(words))]
    return " ".join(words)


EDITS = {
    "exact": lambda q, rng: q,
    "case": lambda q, rng: q.lower() if rng.random() < 0.5 else q.upper(),
    "punctuation": lambda q, rng: re.sub(r"[^\w\s]", "", q).replace(" ", ", ", 1) + " ?",
    "word changed": change_a_word,
    "word dropped": drop_a_word,
}


@pytest.fixture(scope="module")
def benchmarks():
    return [load_benchmark(SHARED_DATA / "benchmarks" / f"{name}.jsonl") for name in BENCHMARKS]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every question the offline generator and reviser wrote on the bundled corpus, kept or not."""
    root = tmp_path_factory.mktemp("generated")
    records = generate(GenerateConfig(seeds=20, out_dir=root / "run", index_root=root / "indexes")).records
    pairs = [{"seed_id": f"{r['seed_id']}/round{past['round']}", "question": past["question"],
              "answer": past["answer"]} for r in records for past in r["rounds"] if past["question"]]
    assert len(pairs) >= 30
    return pairs


def planted_pairs(benchmarks) -> list[tuple[dict, str, str, int]]:
    rng = random.Random(0)
    planted = []
    for benchmark in benchmarks:
        for item in rng.sample(benchmark.items, PER_BENCHMARK):
            for kind, edit in EDITS.items():
                record = {"seed_id": f"planted/{benchmark.name}/{item.index}", "question": edit(item.question, rng),
                          "answer": item.answers[0] if item.answers else ""}
                planted.append((record, kind, benchmark.name, item.index))
    return planted


def test_planted_benchmark_questions_are_flagged_and_generated_pairs_are_not(benchmarks, generated):
    planted = planted_pairs(benchmarks)
    records = [p[0] for p in planted] + generated
    order = list(range(len(records)))
    random.Random(1).shuffle(order)  # planted among generated pairs, not in a block before them
    report = find_contamination([records[i] for i in order], benchmarks)
    caught: dict[int, set[str]] = {}  # original position -> checks that found the planted item itself
    stray: set[int] = set()  # generated pairs with any flag
    for flag in report.flags:
        position = order[flag.record_index]
        if position >= len(planted):
            stray.add(position)
        elif (flag.benchmark, flag.item_index) == planted[position][2:]:
            caught.setdefault(position, set()).add(flag.check)

    print(f"\nrecall per edit kind ({PER_BENCHMARK * len(benchmarks)} planted questions each, "
          f"{len(benchmarks)} benchmarks); 'question checks' leaves out the gold-answer check")
    print(f"{'edit':14}" + "".join(f"{c[:22]:>24}" for c in CHECKS) + f"{'question checks':>17}{'any':>7}")
    recall = {}
    for kind in EDITS:
        positions = [i for i, p in enumerate(planted) if p[1] == kind]
        share = {check: sum(check in caught.get(i, ()) for i in positions) / len(positions) for check in CHECKS}
        by_question = sum(bool(caught.get(i, set()) - {SAME_ANSWER}) for i in positions) / len(positions)
        recall[kind] = (by_question, sum(i in caught for i in positions) / len(positions))
        print(f"{kind:14}" + "".join(f"{share[c]:>24.3f}" for c in CHECKS) + f"{by_question:>17.3f}"
              f"{recall[kind][1]:>7.3f}")
    false_positive = len(stray) / len(generated)
    print(f"false positives: {len(stray)} of {len(generated)} generated questions ({false_positive:.3f})")

    for kind in ("exact", "case", "punctuation"):
        assert recall[kind] == (1.0, 1.0), kind
    for kind in ("word changed", "word dropped"):
        assert recall[kind][0] >= 0.95 and recall[kind][1] >= 0.99, kind
    assert false_positive == 0.0, [records[i]["question"] for i in sorted(stray)][:5]


def test_real_questions_from_train_splits_are_not_flagged(benchmarks):
    """Harder negatives than the offline generator's templated questions: human-written multi-hop questions
    on the same Wikipedia, from MuSiQue and HotpotQA train (the benchmarks sample dev sets)."""
    qa = SHARED_DATA / "dev" / "qa.jsonl"
    if not qa.is_file():
        pytest.skip("dev/qa.jsonl not present")
    rows = [json.loads(line) for line in qa.open(encoding="utf-8")]
    train = [{"seed_id": row["id"], "question": row["question"], "answer": row["answers"][0]}
             for row in rows if row["split"] == "train"]
    report = find_contamination(train, benchmarks)
    rate = len(report.flagged_records()) / len(train)
    print(f"\nfalse positives on real train-split questions: {len(report.flagged_records())} of {len(train)} "
          f"({rate:.3f})")
    assert len(train) == 200 and rate <= 0.01, [f.to_dict() for f in report.flags][:3]
