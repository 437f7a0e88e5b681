"""Generated pairs checked against the benchmarks a user will evaluate on. Four checks, each reported on its
own, each with its evidence: the normalised question is a benchmark question; the pair's question holds most of
the benchmark question's word 2-grams; the two are MinHash near-duplicates (Jaccard of word 2-grams); the gold
answer is the same. The two wording checks also need what a copy keeps and a look-alike does not: the
benchmark question's anchors (the words that name things, anchors.py), all but at most one of them. Sharing
an 8-gram, or template wording, is no contamination: a question in a benchmark's style about other entities
shares both. The same-answer check needs most anchors too (a paraphrase rewords the question, not what it
names), so "yes" or "1999" to another question is no flag.

Measured on a labelled set built from the bundled benchmark lists (bench/decontamination.py; README,
"Decontamination"): every verbatim and lightly edited question and every paraphrase with the answer are
flagged, and benchmark-style questions about other entities are not.
"""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sage_dspy.answers import normalize_answer
from sage_dspy.dataset.anchors import anchor_agreement, anchors, plain_words
from sage_dspy.dataset.benchmarks import Benchmark, BenchmarkItem
from sage_dspy.dataset.minhash import LSHIndex, MinHasher, jaccard, shingles, words
from sage_dspy.outputs import check_output_file, disk_full_as_one_line

EXACT = "exact question"
NGRAM = "benchmark 2-gram coverage"
MINHASH = "minhash near-duplicate"
SAME_ANSWER = "same answer and anchors"
CHECKS = (EXACT, NGRAM, MINHASH, SAME_ANSWER)
COVERAGE = 0.5  # share of the benchmark question's word 2-grams: one changed word in 5 keeps 2 of 4
MINHASH_THRESHOLD = 0.5
# A light edit may change one naming word of three or more; a look-alike changes what it names ("film Carbon
# (Film)" -> "film Elias Corvel" keeps only the generic "film": 1 of 2).
MISSING_ANCHORS = 1
WORDING_ANCHORS = 2 / 3
ANSWER_ANCHORS = 0.5  # share of the benchmark question's anchors a same-answer paraphrase keeps


@dataclass(frozen=True)
class Flag:
    record_index: int  # position among the records given to find_contamination
    seed_id: str
    question: str
    benchmark: str
    item_index: int  # row of the benchmark file (0-based)
    item_question: str
    check: str
    similarity: float  # 1.0 exact; 2-gram coverage; 2-gram Jaccard; share of anchors (same answer)
    evidence: dict = field(default_factory=dict)  # every measure of the match (Evidence.to_dict)

    def to_dict(self) -> dict:
        return {"record": self.record_index, "seed_id": self.seed_id, "question": self.question,
                "benchmark": self.benchmark, "item": self.item_index, "item_question": self.item_question,
                "check": self.check, "similarity": round(self.similarity, 4), "evidence": self.evidence}


@dataclass
class Report:
    records: int
    benchmarks: dict[str, int]  # name -> items
    flags: list[Flag] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Flagged records per benchmark and check (one record counts once per check)."""
        counts = {name: dict.fromkeys(CHECKS, 0) for name in self.benchmarks}
        for flag in self.flags:
            counts[flag.benchmark][flag.check] += 1
        return counts

    def flagged_records(self) -> list[int]:
        return sorted({flag.record_index for flag in self.flags})

    def to_dict(self) -> dict:
        return {"records": self.records, "flagged_records": len(self.flagged_records()),
                "benchmarks": self.benchmarks, "counts": self.counts(),
                "flags": [flag.to_dict() for flag in self.flags]}


def exact_key(tokens: list[str]) -> str:
    """Letters and digits only: "Ahmose-Henutemipet's" and "AhmoseHenutemipets" ask the same question."""
    return re.sub(r"[\W_]+", "", "".join(tokens))


class _Question:
    """What every check compares, computed once per question."""

    def __init__(self, text: str, hasher: MinHasher):
        self.tokens = words(text)
        self.key = exact_key(self.tokens)
        self.shingles = shingles(self.tokens)
        self.signature = hasher.signature(self.shingles)
        self.plain = frozenset(plain_words(text))
        self.anchors = anchors(text)


@dataclass(frozen=True)
class Evidence:
    """How a pair's question compares with one benchmark question."""

    coverage: float  # share of the benchmark question's word 2-grams in the pair's question
    jaccard: float  # of the two questions' word 2-grams
    anchor_share: float  # share of the benchmark question's anchors in the pair's question
    missing: frozenset[str]  # benchmark anchors the pair's question lacks
    same_answer: bool

    @property
    def names_the_same(self) -> bool:
        return len(self.missing) <= MISSING_ANCHORS and self.anchor_share >= WORDING_ANCHORS - 1e-9

    def to_dict(self, item: "_Question") -> dict:
        return {"coverage": round(self.coverage, 4), "jaccard": round(self.jaccard, 4),
                "anchors": sorted(item.anchors - self.missing), "missing_anchors": sorted(self.missing),
                "same_answer": self.same_answer}


def compare(question: _Question, answer: str, item: _Question, item_answers: frozenset[str]) -> Evidence:
    shared = len(question.shingles & item.shingles)
    share, missing = anchor_agreement(item.anchors, question.plain)
    return Evidence(shared / len(item.shingles) if item.shingles else 0.0, jaccard(question.shingles, item.shingles),
                    share, missing, bool(answer) and answer in item_answers)


class _BenchmarkIndex:
    """One benchmark, indexed so each check looks at the items that could match instead of every item: those
    sharing an anchor, a MinHash bucket or the answer."""

    def __init__(self, benchmark: Benchmark, hasher: MinHasher, minhash_threshold: float):
        self.items = benchmark.items
        self.questions: list[_Question] = []
        self.answers: list[frozenset[str]] = []
        self.by_key: dict[str, int] = {}
        self.by_anchor: dict[str, list[int]] = {}
        self.by_answer: dict[str, list[int]] = {}
        self.lsh = LSHIndex(minhash_threshold)
        for position, item in enumerate(self.items):
            question = _Question(item.question, hasher)
            self.questions.append(question)
            self.answers.append(frozenset(normalize_answer(a) for a in item.answers) - {""})
            self.by_key.setdefault(question.key, position)
            for anchor in question.anchors:
                self.by_anchor.setdefault(anchor, []).append(position)
            for answer in self.answers[-1]:
                self.by_answer.setdefault(answer, []).append(position)
            self.lsh.add(position, question.signature)

    def matches(self, question: _Question, answer: str, minhash_threshold: float):
        """(check, position, similarity, evidence) for the best item of each check that fires."""
        if question.key in self.by_key:
            position = self.by_key[question.key]
            yield EXACT, position, 1.0, self._evidence(question, answer, position)
        near = set(self.lsh.candidates(question.signature))
        candidates = sorted(near.union(*(self.by_anchor.get(word, ()) for word in question.plain),
                                       self.by_answer.get(answer, ())))
        best: dict[str, tuple[int, float]] = {}
        for position in candidates:
            found = compare(question, answer, self.questions[position], self.answers[position])
            scores = {NGRAM: found.coverage if found.names_the_same and found.coverage >= COVERAGE else None,
                      MINHASH: found.jaccard if found.names_the_same and position in near
                      and found.jaccard >= minhash_threshold else None,
                      SAME_ANSWER: found.anchor_share if found.same_answer
                      and found.anchor_share >= ANSWER_ANCHORS else None}
            for check, score in scores.items():
                if score is not None and (check not in best or score > best[check][1]):
                    best[check] = (position, score)  # candidates ascend: the earliest wins ties
        for check in (NGRAM, MINHASH, SAME_ANSWER):
            if check in best:
                position, score = best[check]
                yield check, position, score, self._evidence(question, answer, position)

    def _evidence(self, question: _Question, answer: str, position: int) -> dict:
        item = self.questions[position]
        return compare(question, answer, item, self.answers[position]).to_dict(item)


def find_contamination(records: list[dict], benchmarks: list[Benchmark], *,
                       minhash_threshold: float = MINHASH_THRESHOLD) -> Report:
    """Every check of every record against every benchmark; a record flags at most one item per benchmark
    and check (the closest one)."""
    hasher = MinHasher()
    names = _unique_names(benchmarks)
    indexes = [_BenchmarkIndex(b, hasher, minhash_threshold) for b in benchmarks]
    report = Report(records=len(records), benchmarks={name: len(b.items) for name, b in zip(names, benchmarks)})
    for record_index, record in enumerate(records):
        question = _Question(record.get("question", ""), hasher)
        if not question.tokens:
            continue
        answer = normalize_answer(record.get("answer", ""))
        for name, index in zip(names, indexes):
            for check, position, similarity, evidence in index.matches(question, answer, minhash_threshold):
                item: BenchmarkItem = index.items[position]
                report.flags.append(Flag(record_index, str(record.get("seed_id", "")), record.get("question", ""),
                                         name, item.index, item.question, check, similarity, evidence))
    return report


def _unique_names(benchmarks: list[Benchmark]) -> list[str]:
    """Two files called test.jsonl in different folders stay two benchmarks in the report."""
    names, seen = [], {}
    for benchmark in benchmarks:
        seen[benchmark.name] = seen.get(benchmark.name, 0) + 1
        names.append(benchmark.name if seen[benchmark.name] == 1 else f"{benchmark.name}#{seen[benchmark.name]}")
    return names


REPORT_KEYS = ("records", "flagged_records", "benchmarks", "counts", "flags")  # Report.to_dict's; a run adds "runs"
REPORT = "contamination report"


def is_report(path: Path) -> bool:
    """Whether `path` holds a report `write_report` wrote: a JSON object with every key of one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(key in data for key in REPORT_KEYS)


def check_report_path(path: Path, inputs: list[Path]) -> None:
    """Before any work: --out may replace an earlier report only, never an input or a file of the user's."""
    check_output_file(path, is_report, what=REPORT, inputs=[*inputs, *(Path(i) / "records.jsonl" for i in inputs)])


def write_report(path: Path, data: dict) -> None:
    """A temporary name, then a rename: a killed command or a full disk never leaves half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with disk_full_as_one_line(path, "nothing was written"):
            partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
