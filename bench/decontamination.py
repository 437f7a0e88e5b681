"""Decontamination precision and recall on a labelled set built from the bundled benchmark lists.

    .venv/bin/python -m bench.decontamination [--data ../shared/data] [--per-benchmark 40]

The set is generated here, deterministically (seeded), from ../shared/data/benchmarks/*.jsonl (SOURCES.md):
- contaminated (should be flagged, each against the item it came from):
  `verbatim` the question as the benchmark has it; `light edit` one of: lower or upper case, punctuation
  dropped, one word that names nothing changed or dropped, a filler word added; `paraphrase, same answer` the
  question reworded (synonyms, another question frame, clauses reordered) with the benchmark's answer;
- clean (should not be flagged by any benchmark): `other entities` a benchmark question with every naming
  span replaced, names by titles of the bundled corpus (a made-up world, so no benchmark asks about them) and
  numbers by other numbers, answered by another made-up title (yes/no answers kept: the hardest case, same
  template and same answer); `real train questions` human-written MuSiQue and HotpotQA train questions from
  dev/qa.jsonl (the benchmarks sample dev sets).
It prints recall per contaminated class, the share flagged per clean class, and the precision of the flags;
tests/test_decontamination_recall.py asserts the goals on the same set.
"""

import argparse
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from sage_dspy.dataset.anchors import STOPWORDS
from sage_dspy.dataset.benchmarks import Benchmark, load_benchmark
from sage_dspy.dataset.decontaminate import find_contamination
from sage_dspy.search.corpus import BUNDLED_CORPUS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCHMARKS = ("hotpotqa_500", "2wiki_500", "musique_500", "bamboogle", "frames_824")
CONTAMINATED = ("verbatim", "light edit", "name typo", "paraphrase, same answer")
CLEAN = ("other entities", "real train questions")
PER_BENCHMARK = 40  # items per benchmark and generated class: 200 per class over the five lists
FILLERS = ("famous", "former", "main", "old", "other", "well-known")
SYNONYMS = {
    "film": "movie", "movie": "film", "director": "filmmaker", "directed": "made", "located": "situated",
    "founded": "established", "died": "passed away", "wrote": "authored", "written": "authored",
    "played": "portrayed", "country": "nation", "city": "town", "company": "firm", "won": "received",
    "father": "dad", "mother": "mom", "wife": "spouse", "husband": "spouse", "largest": "biggest",
    "first": "earliest", "released": "put out", "created": "made", "song": "track", "album": "record",
    "team": "club", "performer": "artist", "singer": "vocalist", "born": "brought into the world",
    "year": "calendar year", "built": "constructed", "book": "novel", "author": "writer", "known": "recognised",
    "older": "born earlier", "place": "location", "university": "college", "located in": "found in",
    "member": "part", "show": "programme", "people": "persons", "famous": "renowned", "game": "match",
}
FRAMES = ((r"^Who (is|was) ", r"Which person \1 "), (r"^What (is|was) ", r"Tell me: what \1 "),
          (r"^When (did|was|is) ", r"At what point in time \1 "), (r"^Where (is|was|did) ", r"In which place \1 "),
          (r"^Which ", "What "), (r"^What ", "Which "), (r"^How many ", "What number of "),
          (r"^In what year ", "In which year "))
_SPAN = re.compile(r"(?:[A-Z0-9][\w.'’-]*)(?:\s+(?:of|the|de|and|von|van)?\s*[A-Z0-9][\w.'’-]*)*")


@dataclass(frozen=True)
class Case:
    label: str  # a class of CONTAMINATED or CLEAN
    question: str
    answer: str
    source: tuple[str, int] | None  # (benchmark, item index) a contaminated case came from


def naming_spans(question: str) -> list[re.Match]:
    """Runs of capitalised or numeric words, the question's first word left out when it only starts it."""
    spans = []
    for match in _SPAN.finditer(question):
        text = match.group()
        if match.start() == 0 and text.split()[0].lower() in STOPWORDS:
            rest = text.split(maxsplit=1)
            if len(rest) < 2:
                continue
            match = re.compile(re.escape(rest[1])).search(question, len(rest[0]))
        spans.append(match)
    return spans


def _naming_words(question: str) -> set[int]:
    """Word positions (in question.split()) inside a naming span."""
    inside, position, ranges = set(), 0, []
    for word in question.split():
        position = question.index(word, position)
        ranges.append((position, position + len(word)))
        position += len(word)
    for span in naming_spans(question):  # a word overlapping a span ('"Cogito,') names something too
        inside.update(i for i, (start, end) in enumerate(ranges) if start < span.end() and span.start() < end)
    return inside


def light_edit(question: str, rng: random.Random) -> str:
    words = question.split()
    free = [i for i in range(1, len(words)) if i not in _naming_words(question)] or [len(words) - 1]
    kind = rng.choice(("case", "punctuation", "change", "drop", "add"))
    if kind == "case":
        return question.lower() if rng.random() < 0.5 else question.upper()
    if kind == "punctuation":
        return re.sub(r"[^\w\s]", "", question).replace(" ", ", ", 1) + " ?"
    at = rng.choice(free)
    if kind == "change":
        words[at] = rng.choice([w for w in FILLERS if w != words[at].lower()])
    elif kind == "drop" and len(words) > 3:
        del words[at]
    else:
        words.insert(at, rng.choice(FILLERS))
    return " ".join(words)


def name_typo(question: str, rng: random.Random) -> str:
    """One letter of one naming word changed (a misspelt copy: "Hypocrit (Film)"), or the question as it is
    when it names nothing long enough to misspell (then it is a verbatim copy)."""
    words = question.split()
    naming = [i for i in sorted(_naming_words(question)) if sum(c.isalpha() for c in words[i]) >= 6]
    if not naming:
        return question
    position = rng.choice(naming)
    word = words[position]
    letters = [i for i, c in enumerate(word) if c.isalpha() and c.islower()] or [
        i for i, c in enumerate(word) if c.isalpha()]
    at = rng.choice(letters)
    replacement = rng.choice([c for c in "aeioulnrst" if c != word[at].lower()])
    words[position] = word[:at] + (replacement.upper() if word[at].isupper() else replacement) + word[at + 1:]
    return " ".join(words)


def paraphrase(question: str, rng: random.Random) -> str:
    """Reworded, what it names kept: question frame, synonyms for words that name nothing, clauses swapped."""
    text = question.strip()
    for pattern, replacement in FRAMES:
        if re.search(pattern, text):
            text = re.sub(pattern, replacement, text, count=1)
            break
    naming = _naming_words(text)
    words = [SYNONYMS.get(word.lower(), word) if i not in naming else word for i, word in enumerate(text.split())]
    text = " ".join(words)
    if "," in text and rng.random() < 0.7:  # "In 1973, who ...?" -> "Who ..., in 1973?"
        head, tail = text.split(",", 1)
        text = tail.strip().rstrip("?") + ", " + head[0].lower() + head[1:] + "?"
    return text if text.endswith("?") else text.rstrip(".") + "?"


def made_up_names() -> list[str]:
    """The bundled corpus's titles: places, people and firms of a world no benchmark asks about."""
    lines = BUNDLED_CORPUS.read_text(encoding="utf-8").splitlines()
    return sorted({json.loads(line)["title"] for line in lines if line.strip()})


def other_entities(question: str, names: list[str], rng: random.Random) -> str | None:
    """`question` with each naming span replaced (a number by another number, a name by a made-up one); None
    when it names nothing."""
    spans = naming_spans(question)
    if not spans:
        return None
    text = question
    for span in reversed(spans):
        replacement = str(rng.randrange(1700, 1990)) if any(c.isdigit() for c in span.group()) else rng.choice(names)
        text = text[:span.start()] + replacement + text[span.end():]
    return text


def labelled_set(benchmarks: list[Benchmark], train_questions: list[dict], per_benchmark: int = PER_BENCHMARK,
                 seed: int = 0) -> list[Case]:
    rng, names = random.Random(seed), made_up_names()
    cases: list[Case] = []
    for benchmark in benchmarks:
        items = [item for item in benchmark.items if item.answers]
        for item in rng.sample(items, min(per_benchmark, len(items))):
            source, answer = (benchmark.name, item.index), item.answers[0]
            cases.append(Case("verbatim", item.question, answer, source))
            cases.append(Case("light edit", light_edit(item.question, rng), answer, source))
            cases.append(Case("name typo", name_typo(item.question, rng), answer, source))
            cases.append(Case("paraphrase, same answer", paraphrase(item.question, rng), answer, source))
        made = 0
        for item in rng.sample(items, len(items)):
            question = other_entities(item.question, names, rng)
            if question and made < per_benchmark:
                yes_no = item.answers[0].strip().lower() in ("yes", "no")
                cases.append(Case("other entities", question, item.answers[0] if yes_no else rng.choice(names), None))
                made += 1
    cases += [Case("real train questions", row["question"], row["answers"][0], None) for row in train_questions]
    return cases


def measure(cases: list[Case], benchmarks: list[Benchmark]) -> dict:
    """Per class: cases, flagged (by any benchmark), and for contaminated classes caught (flagged against the
    item they came from); the precision of all flags (a flag of a clean case is a false positive)."""
    report = find_contamination([{"seed_id": str(i), "question": c.question, "answer": c.answer}
                                 for i, c in enumerate(cases)], benchmarks)
    flagged: dict[int, set] = {}
    for flag in report.flags:
        flagged.setdefault(flag.record_index, set()).add((flag.benchmark, flag.item_index))
    per_class = {}
    for label in CONTAMINATED + CLEAN:
        members = [i for i, c in enumerate(cases) if c.label == label]
        per_class[label] = {"cases": len(members), "flagged": sum(i in flagged for i in members),
                            "caught": sum(cases[i].source in flagged.get(i, ()) for i in members)}
    true = sum(per_class[label]["flagged"] for label in CONTAMINATED)
    false = sum(per_class[label]["flagged"] for label in CLEAN)
    return {"classes": per_class, "precision": true / (true + false) if true + false else 1.0,
            "flags": report.flags}


def load(data: Path = SHARED_DATA) -> tuple[list[Benchmark], list[dict]]:
    benchmarks = [load_benchmark(data / "benchmarks" / f"{name}.jsonl") for name in BENCHMARKS]
    qa = data / "dev" / "qa.jsonl"
    rows = [json.loads(line) for line in qa.open(encoding="utf-8")] if qa.is_file() else []
    return benchmarks, [row for row in rows if row["split"] == "train"]


def table(result: dict) -> str:
    lines = [f"{'class':34}{'cases':>7}{'flagged':>9}{'rate':>8}"]
    for label, row in result["classes"].items():
        counted = row["caught"] if label in CONTAMINATED else row["flagged"]
        name = f"{label} ({'recall' if label in CONTAMINATED else 'flagged'})"
        lines.append(f"{name:34}{row['cases']:>7}{counted:>9}{counted / max(row['cases'], 1):>8.3f}")
    lines.append(f"precision of all flags: {result['precision']:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--per-benchmark", type=int, default=PER_BENCHMARK)
    args = parser.parse_args()
    benchmarks, train = load(args.data)
    print(table(measure(labelled_set(benchmarks, train, args.per_benchmark), benchmarks)))


if __name__ == "__main__":
    main()
