"""Generated pairs checked against the benchmarks a user will evaluate on. Four checks, each reported on its
own: the normalised question is a benchmark question; the two share a word 8-gram (13-grams, the usual
choice for documents, almost never fire on 15 to 40 word questions); the questions are MinHash
near-duplicates; the gold answer is the same and most of the question's content words are too.
Every flag names the benchmark, the matched item (its row and question) and the check.
"""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sage_dspy.answers import normalize_answer
from sage_dspy.dataset.benchmarks import Benchmark, BenchmarkItem
from sage_dspy.dataset.minhash import LSHIndex, MinHasher, jaccard, shingles, words
from sage_dspy.outputs import check_output_file, disk_full_as_one_line

EXACT = "exact question"
NGRAM = "word 8-gram overlap"
MINHASH = "minhash near-duplicate"
SAME_ANSWER = "same answer, question overlap"
CHECKS = (EXACT, NGRAM, MINHASH, SAME_ANSWER)
NGRAM_WORDS = 8
MINHASH_THRESHOLD = 0.5
ANSWER_OVERLAP = 0.5  # share of the shorter question's content words the other question has too
# Words every question has; two questions about different things share them, so they prove nothing.
STOPWORDS = frozenset(
    "who whom whose what which when where why how is are was were be been being do does did has have had of "
    "in on at to for from by with as and or but not that this these those it its his her their there than "
    "then into onto about after before during between same also one name named called".split())


@dataclass(frozen=True)
class Flag:
    record_index: int  # position among the records given to find_contamination
    seed_id: str
    question: str
    benchmark: str
    item_index: int  # row of the benchmark file (0-based)
    item_question: str
    check: str
    similarity: float  # 1.0 exact; share of 8-grams; 2-gram Jaccard; content-word overlap

    def to_dict(self) -> dict:
        return {"record": self.record_index, "seed_id": self.seed_id, "question": self.question,
                "benchmark": self.benchmark, "item": self.item_index, "item_question": self.item_question,
                "check": self.check, "similarity": round(self.similarity, 4)}


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


def content_words(tokens: list[str]) -> frozenset[str]:
    return frozenset(token for token in tokens if token not in STOPWORDS)


def ngrams(tokens: list[str], size: int = NGRAM_WORDS) -> frozenset[tuple]:
    """Word `size`-grams; a shorter question is one gram, so it overlaps only with itself."""
    if len(tokens) <= size:
        return frozenset([tuple(tokens)]) if tokens else frozenset()
    return frozenset(tuple(tokens[i:i + size]) for i in range(len(tokens) - size + 1))


class _Question:
    """What every check compares, computed once per question."""

    def __init__(self, text: str, hasher: MinHasher):
        self.tokens = words(text)
        self.key = exact_key(self.tokens)
        self.ngrams = ngrams(self.tokens)
        self.shingles = shingles(self.tokens)
        self.signature = hasher.signature(self.shingles)
        self.content = content_words(self.tokens)


def overlap(a: frozenset, b: frozenset) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


class _BenchmarkIndex:
    """One benchmark, indexed so each check looks up candidates instead of scanning every item."""

    def __init__(self, benchmark: Benchmark, hasher: MinHasher, minhash_threshold: float):
        self.items = benchmark.items
        self.questions: dict[int, _Question] = {}
        self.by_key: dict[str, int] = {}
        self.by_ngram: dict[tuple, list[int]] = {}
        self.by_answer: dict[str, list[int]] = {}
        self.lsh = LSHIndex(minhash_threshold)
        for position, item in enumerate(self.items):
            question = self.questions[position] = _Question(item.question, hasher)
            self.by_key.setdefault(question.key, position)
            for gram in question.ngrams:
                self.by_ngram.setdefault(gram, []).append(position)
            for answer in {normalize_answer(a) for a in item.answers} - {""}:
                self.by_answer.setdefault(answer, []).append(position)
            self.lsh.add(position, question.signature)

    def matches(self, question: _Question, answer: str, minhash_threshold: float, answer_overlap: float):
        """(check, position, similarity) for the best item of each check that fires."""
        if question.key in self.by_key:
            yield EXACT, self.by_key[question.key], 1.0
        shared: dict[int, int] = {}
        for gram in question.ngrams:
            for position in self.by_ngram.get(gram, ()):
                shared[position] = shared.get(position, 0) + 1
        if shared:
            position = max(shared, key=lambda p: (shared[p], -p))
            yield NGRAM, position, shared[position] / len(question.ngrams)
        near = self.lsh.candidates(question.signature)
        yield from _best(MINHASH, minhash_threshold,
                         ((p, jaccard(question.shingles, self.questions[p].shingles)) for p in near))
        same_answer = self.by_answer.get(answer, ())
        yield from _best(SAME_ANSWER, answer_overlap,
                         ((p, overlap(question.content, self.questions[p].content)) for p in same_answer))


def _best(check: str, threshold: float, scored):
    """The highest-scoring position at or above threshold, the earliest on ties."""
    best = None
    for position, score in scored:
        if score >= threshold and (best is None or score > best[1] or (score == best[1] and position < best[0])):
            best = (position, score)
    if best:
        yield check, best[0], best[1]


def find_contamination(records: list[dict], benchmarks: list[Benchmark], *,
                       minhash_threshold: float = MINHASH_THRESHOLD,
                       answer_overlap: float = ANSWER_OVERLAP) -> Report:
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
            for check, position, similarity in index.matches(question, answer, minhash_threshold, answer_overlap):
                item: BenchmarkItem = index.items[position]
                report.flags.append(Flag(record_index, str(record.get("seed_id", "")), record.get("question", ""),
                                         name, item.index, item.question, check, similarity))
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
