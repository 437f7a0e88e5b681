"""Decontamination: benchmarks read from any layout, each check firing on its own kind of match, the
command's report and bad input. The measured test plants real benchmark questions among generated pairs."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli_helpers import assert_one_line_error, invoke
from sage_dspy.dataset.benchmarks import Benchmark, BenchmarkError, BenchmarkItem, load_benchmark
from sage_dspy.dataset.decontaminate import CHECKS, EXACT, MINHASH, NGRAM, SAME_ANSWER, find_contamination


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def bench(*questions_answers, name="bench") -> Benchmark:
    items = tuple(BenchmarkItem(i, q, (a,)) for i, (q, a) in enumerate(questions_answers))
    return Benchmark(name, name, items)


LONG = "Which stadium hosted the Pro Bowl in the season when the team from Kansas City won the title?"
SHORT = "Who is the father of Emperor Taizong of Song?"


# --- reading benchmarks -----------------------------------------------------------------------------------
def test_field_names_are_found_in_every_layout(tmp_path):
    write_jsonl(tmp_path / "flashrag.jsonl", [{"id": "a", "query": "Q one?", "golden_answers": ["A", "B"]}])
    (tmp_path / "frames.json").write_text(json.dumps([{"Prompt": "Q two?", "Answer": "C"}]), encoding="utf-8")
    (tmp_path / "wrapped.json").write_text(json.dumps({"version": 1, "data": [{"question": "Q three?",
                                                                               "answers": {"text": ["D"]}}]}))
    pq.write_table(pa.table({"problem": ["Q four?", ""], "answer": ["E", "F"]}), tmp_path / "math.parquet")
    (tmp_path / "lines.json").write_text('{"Question": "Q five?", "answer": 1999}\n', encoding="utf-8")
    loaded = {name: load_benchmark(tmp_path / name) for name in
              ("flashrag.jsonl", "frames.json", "wrapped.json", "math.parquet", "lines.json")}
    assert [b.items[0].question for b in loaded.values()] == ["Q one?", "Q two?", "Q three?", "Q four?", "Q five?"]
    assert loaded["flashrag.jsonl"].items[0].answers == ("A", "B")
    assert loaded["wrapped.json"].items[0].answers == ("D",)
    assert loaded["lines.json"].items[0].answers == ("1999",)
    assert len(loaded["math.parquet"].items) == 1  # a row without a question is no item
    assert loaded["frames.json"].name == "frames"


def test_a_folder_of_data_files_is_read_by_datasets_one_split_at_a_time(tmp_path):
    folder = tmp_path / "frames-benchmark"
    folder.mkdir()
    pq.write_table(pa.table({"Prompt": ["Q test?"], "Answer": ["T"]}), folder / "test.parquet")
    pq.write_table(pa.table({"Prompt": ["Q train?"], "Answer": ["R"]}), folder / "train.parquet")
    with pytest.raises(BenchmarkError, match="has splits .*name one, as in"):
        load_benchmark(folder)
    benchmark = load_benchmark(f"{folder}@test")
    assert benchmark.name == "frames-benchmark@test" and benchmark.items == (BenchmarkItem(0, "Q test?", ("T",)),)


@pytest.mark.parametrize("source, message", [
    ("missing.jsonl", "does not exist"),
    ("nobody/not-cached-here", "could not read benchmark nobody/not-cached-here offline"),
])
def test_sources_that_cannot_be_read_say_so(tmp_path, monkeypatch, source, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark(source)


def test_a_file_without_a_question_field_names_the_fields_it_has(tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", [{"text": "x", "label": "y"}])
    with pytest.raises(BenchmarkError, match=r"no question field \(looked for question, query, problem, "
                                             r"Prompt; found label, text\)"):
        load_benchmark(path)


# --- the four checks --------------------------------------------------------------------------------------
def checks_fired(question: str, answer: str, benchmark: Benchmark) -> dict[str, tuple[int, float]]:
    report = find_contamination([{"seed_id": "s", "question": question, "answer": answer}], [benchmark])
    return {flag.check: (flag.item_index, round(flag.similarity, 2)) for flag in report.flags}


def test_each_check_fires_on_its_own_kind_of_match():
    benchmark = bench(("Where was the author of Gull Songs born?", "Port Senna"), (LONG, "Arrowhead Stadium"),
                      (SHORT, "Zhao Hongyin"))
    # case and punctuation only: every wording check
    assert set(checks_fired(LONG.upper().replace("?", " !"), "", benchmark)) == {EXACT, NGRAM, MINHASH}
    # one word changed: no exact match; the benchmark question's 2-grams and MinHash still see it
    changed = checks_fired(LONG.replace("hosted", "staged"), "", benchmark)
    assert set(changed) == {NGRAM, MINHASH} and changed[NGRAM] == (1, 0.85)
    # a short question with its word changed, and the gold answer: all three
    assert set(checks_fired(SHORT.replace("father", "son"), "Zhao Hongyin", benchmark)) == {NGRAM, MINHASH,
                                                                                            SAME_ANSWER}
    # a paraphrase with the gold answer: only the answer check (every anchor is there)
    paraphrase = "Emperor Taizong of Song: whose son was he?"
    assert checks_fired(paraphrase, "zhao  hongyin.", benchmark) == {SAME_ANSWER: (2, 1.0)}
    # the same answer to an unrelated question is no flag
    assert checks_fired("Which official received the gannet flag in 1914?", "Zhao Hongyin", benchmark) == {}


def test_the_benchmarks_template_about_other_entities_is_no_flag():
    """What flagged clean pairs before: one shared 8-gram, or MinHash on template wording. Other names, other
    question, even with most of its words (and, for a yes/no question, its answer)."""
    benchmark = bench((LONG, "Arrowhead Stadium"), (SHORT, "Zhao Hongyin"),
                      ("Were Scott Derrickson and Ed Wood of the same nationality?", "yes"))
    assert checks_fired(LONG.replace("Kansas City", "Port Senna"), "Brenna Mill", benchmark) == {}
    assert checks_fired(SHORT.replace("Emperor Taizong of Song", "Louis XIV"), "Louis XIII", benchmark) == {}
    assert checks_fired("Were Ada Marlowe and Bram Tolliver of the same nationality?", "yes", benchmark) == {}


def test_every_flag_reports_its_evidence():
    benchmark = bench((LONG, "Arrowhead Stadium"))
    report = find_contamination([{"question": LONG.replace("Pro Bowl", "Pro Final"), "answer": "arrowhead stadium"}],
                                [benchmark])
    flag = next(f for f in report.flags if f.check == NGRAM)
    assert flag.evidence["missing_anchors"] == ["bowl"] and flag.evidence["anchors"] == ["city", "kansas", "pro"]
    assert flag.evidence["same_answer"] is True and flag.evidence["coverage"] == round(flag.similarity, 4)
    assert json.loads(json.dumps(report.to_dict()))["flags"][0]["evidence"] == report.flags[0].evidence


def test_the_report_counts_per_benchmark_and_check_and_names_each_item():
    first = bench(("A question nobody generated about rivers?", "x"), (LONG, "Arrowhead Stadium"), name="hotpot")
    second = bench((SHORT, "Zhao Hongyin"), name="2wiki")
    records = [{"seed_id": "w1", "question": LONG, "answer": "Arrowhead Stadium"},
               {"seed_id": "w2", "question": "Which mill stands at the weir?", "answer": "Brenna Mill"},
               {"seed_id": "w3", "question": SHORT.lower(), "answer": "Someone else"}]
    report = find_contamination(records, [first, second])
    assert report.counts() == {"hotpot": dict.fromkeys(CHECKS, 1), "2wiki": {EXACT: 1, NGRAM: 1, MINHASH: 1,
                                                                               SAME_ANSWER: 0}}
    assert report.flagged_records() == [0, 2]
    flag = next(f for f in report.flags if f.benchmark == "hotpot" and f.check == EXACT)
    assert (flag.record_index, flag.seed_id, flag.item_index, flag.item_question) == (0, "w1", 1, LONG)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["records"] == 3 and data["flagged_records"] == 2 and len(data["flags"]) == 7


def test_two_benchmarks_of_one_name_stay_apart():
    report = find_contamination([{"question": SHORT}], [bench((SHORT, "a")), bench((SHORT, "a"))])
    assert list(report.counts()) == ["bench", "bench#2"]


# --- the command ------------------------------------------------------------------------------------------
def run_folder(path, records):
    """A finished run as `sage generate` leaves it: records with their verdicts, and the summary."""
    path.mkdir(parents=True)
    write_jsonl(path / "records.jsonl", records)
    (path / "summary.json").write_text(json.dumps({"overall": {"seeds": len(records)}}), encoding="utf-8")
    return path


def test_decontaminate_prints_the_counts_and_writes_every_flag(tmp_path):
    run = run_folder(tmp_path / "run", [{"seed_id": "w1", "question": LONG, "answer": "Arrowhead Stadium",
                                         "kept": True},
                                        {"seed_id": "w2", "question": SHORT, "answer": "x", "kept": False,
                                         "drop_reason": "too_easy"}])
    other = run_folder(tmp_path / "other", [{"seed_id": "w9", "question": SHORT.upper(), "answer": "y",
                                             "kept": True}])
    benchmark = write_jsonl(tmp_path / "hotpot.jsonl", [{"idx": 1, "question": LONG, "answer": "Arrowhead Stadium"},
                                                        {"idx": 2, "question": SHORT, "answer": "Zhao Hongyin"}])
    result = invoke("decontaminate", run, other, "--benchmark", benchmark, "--out", tmp_path / "r" / "report.json")
    assert result.exit_code == 0, result.output
    assert "2 of 2 kept pairs flagged" in result.stdout and "hotpot" in result.stdout
    assert "hotpot#0 exact question (1.00; anchors 4/4, same answer)" in " ".join(result.stdout.split())
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["counts"]["hotpot"] == {EXACT: 2, NGRAM: 2, MINHASH: 2, SAME_ANSWER: 1}
    assert {(f["run"], f["seed_id"], f["item"]) for f in report["flags"]} == {(str(run), "w1", 0),
                                                                             (str(other), "w9", 1)}
    assert not list((tmp_path / "r").glob("*.partial"))


@pytest.mark.parametrize("case, expected", [
    ("no records file", "holds no records.jsonl"),
    ("empty records", "holds no records"),
    ("missing benchmark", "does not exist"),
    ("no question field", "no question field"),
    ("no benchmark", "no benchmark given"),
    ("no run", "no run folder given"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, case, expected):
    good_run = run_folder(tmp_path / "good", [{"seed_id": "w1", "question": LONG, "answer": "x", "kept": True}])
    good_bench = write_jsonl(tmp_path / "b.jsonl", [{"question": LONG, "answer": "x"}])
    args = {
        "no records file": [tmp_path, "-b", good_bench],
        "empty records": [run_folder(tmp_path / "empty", []), "-b", good_bench],
        "missing benchmark": [good_run, "-b", tmp_path / "nope.jsonl"],
        "no question field": [good_run, "-b", write_jsonl(tmp_path / "q.jsonl", [{"text": "x"}])],
        "no benchmark": [good_run],
        "no run": ["-b", good_bench],
    }[case]
    result = invoke("decontaminate", *args, "--out", tmp_path / "report.json")
    assert_one_line_error(result, expected)
    assert not (tmp_path / "report.json").exists()


# --- benchmarks in chat layout (Search-R1, verl) ----------------------------------------------------------
PLANTED = [("Where was the author of Gull Songs born?", "Port Senna"), (LONG, "Arrowhead Stadium"),
           (SHORT, "Zhao Hongyin"), ("Were Scott Derrickson and Ed Wood of the same nationality?", "yes"),
           ("In what year was the company that was founded as Sound of Music added to the S&P 500", "1999")]


def search_r1_rows(pairs, keep_source_columns: bool) -> list[dict]:
    """Rows as Search-R1's nq_search.py writes them (process_fn: strip, add '?', make_prefix 'base')."""
    from vendor.search_r1_nq_search import make_prefix

    rows = []
    for index, (question, answer) in enumerate(pairs):
        question = question.strip() if question.strip().endswith("?") else question.strip() + "?"
        row = {"data_source": "hotpotqa", "prompt": [{"role": "user", "content": make_prefix(
            {"question": question}, template_type="base")}], "ability": "fact-reasoning",
            "reward_model": {"style": "rule", "ground_truth": {"target": [answer]}},
            "extra_info": {"split": "test", "index": index}}
        rows.append({"id": str(index), "question": question, "golden_answers": [answer], **row}
                    if keep_source_columns else row)
    return rows


def write_parquet(path, rows):
    import datasets

    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def test_search_r1_and_verl_parquet_catch_what_the_same_benchmark_in_json_catches(tmp_path):
    from vendor.verl_preprocess_search_r1_dataset import process_single_row

    as_json = write_jsonl(tmp_path / "bench.jsonl", [{"question": q, "answer": a} for q, a in PLANTED])
    full = search_r1_rows(PLANTED, keep_source_columns=True)
    sources = {
        "json": as_json,
        "search-r1": write_parquet(tmp_path / "search_r1.parquet", full),
        "search-r1 prompt only": write_parquet(tmp_path / "prompt_only.parquet",
                                               search_r1_rows(PLANTED, keep_source_columns=False)),
        "verl": write_parquet(tmp_path / "verl.parquet", [process_single_row(row, "test", i).to_dict()
                                                          for i, row in enumerate(full)]),
    }
    loaded = {name: load_benchmark(path) for name, path in sources.items()}
    for name, benchmark in loaded.items():  # the question as written (nq_search adds a '?'), every answer
        assert [(item.index, item.question.rstrip("?"), item.answers) for item in benchmark.items] == \
            [(i, q.rstrip("?"), (a,)) for i, (q, a) in enumerate(PLANTED)], name
    records = [{"seed_id": "exact", "question": SHORT, "answer": "x"},
               {"seed_id": "edited", "question": LONG.replace("hosted", "staged"), "answer": ""},
               {"seed_id": "paraphrase", "question": "Sound of Music, the company: in which year did it join the "
                                                     "S&P 500?", "answer": "1999"},
               {"seed_id": "look-alike", "question": "Were Ada Marlowe and Bram Tolliver of the same nationality?",
                "answer": "yes"}]
    found = {name: {(f.seed_id, f.item_index, f.check) for f in find_contamination(records, [b]).flags}
             for name, b in loaded.items()}
    assert {seed for seed, _, _ in found["json"]} == {"exact", "edited", "paraphrase"}
    assert all(flags == found["json"] for flags in found.values()), found


def test_the_against_option_reads_a_verl_parquet(tmp_path):
    from vendor.verl_preprocess_search_r1_dataset import process_single_row

    verl = write_parquet(tmp_path / "verl.parquet", [process_single_row(row, "test", i).to_dict() for i, row in
                                                     enumerate(search_r1_rows(PLANTED, keep_source_columns=True))])
    run = run_folder(tmp_path / "run", [{"seed_id": "w1", "question": LONG.lower(), "answer": "Arrowhead Stadium",
                                         "kept": True}])
    result = invoke("decontaminate", run, "--against", verl, "--out", tmp_path / "report.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert {f["check"] for f in report["flags"]} == set(CHECKS) and {f["item"] for f in report["flags"]} == {1}


@pytest.mark.parametrize("benchmark_anchors, words, missing", [
    ({"hypocrite", "film"}, {"hypocrit", "film"}, set()),  # one letter dropped: the same name
    ({"marlowe"}, {"marolwe"}, set()),  # two letters swapped
    ({"1932"}, {"1933"}, {"1932"}),  # another number is another question
    ({"ada"}, {"adz"}, {"ada"}),  # too short to tell a typo from another name
    ({"corvel"}, {"carbon"}, {"corvel"}),
])
def test_a_misspelt_name_is_still_that_name_a_changed_number_is_not(benchmark_anchors, words, missing):
    from sage_dspy.dataset.anchors import anchor_agreement

    share, left_out = anchor_agreement(frozenset(benchmark_anchors), frozenset(words))
    assert left_out == missing and share == 1 - len(missing) / len(benchmark_anchors)
