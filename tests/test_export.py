"""`sage export` on a real offline run: every format read back with its consumer's library, and each row
checked against the consumer's own code (vendored in tests/vendor/ with its commit)."""

import json
import os
import re
import shutil
import socket
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from cli_helpers import assert_one_line_error, invoke
from sage_dspy.dataset import export as exporting
from sage_dspy.dataset.chats import shortest_correct_attempt
from sage_dspy.dataset.formats import hf, search_r1
from sage_dspy.dataset.splits import evidence
from vendor.chat_template import render
from vendor.search_r1_nq_search import make_prefix
from vendor.search_r1_qa_em import compute_score_em, em_check
from vendor.verl_preprocess_search_r1_dataset import process_single_row
from vendor.verl_search_r1_like_qa_em import compute_score as verl_compute_score

ALL_FORMATS = "search-r1,verl,sft-openai,sft-trl,sft-search-r1,sft-verl,hf"
SPLITS = ("train", "test")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One finished offline run on the bundled corpus (8 seeds, about 6 s), shared by this module's tests."""
    root = tmp_path_factory.mktemp("export-run")
    here = os.getcwd()
    os.chdir(root)  # the index cache goes under ./artifacts
    try:
        result = invoke("generate", "--seeds", 8, "--targets", "2-3", "--seed", 1, "--out", root / "run",
                        "--no-track")
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.fixture(scope="module")
def kept(run_dir) -> dict[str, dict]:
    """The run's kept records by question."""
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    return {r["question"]: r for r in records if r["kept"]}


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export-out") / "out"
    result = invoke("export", run_dir, "--format", ALL_FORMATS, "--out", out, "--splits", "train=0.75,test=0.25")
    assert result.exit_code == 0, result.output
    assert "search-r1" in result.stdout and "pairs" in result.stdout
    assert "least trainer settings these pairs fit in" in result.stdout and "max_turns=" in result.stdout
    return out


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def load(kind: str, path: Path, cache: Path) -> datasets.Dataset:
    return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=str(cache))


def test_every_format_is_written_for_every_split_and_loads(exported, kept, tmp_path):
    manifest = json.loads((exported / exporting.MANIFEST).read_text())
    assert sum(manifest["splits"].values()) == len(kept) and list(manifest["splits"]) == list(SPLITS)
    assert manifest["splits"]["test"] >= 1  # 0.25 of 7 pairs: at least one whole group is held out
    for split in SPLITS:
        count = manifest["splits"][split]
        for name in ("search-r1", "verl", "sft-trl"):
            assert pq.read_table(exported / name / f"{split}.parquet").num_rows == count
            assert load("parquet", exported / name / f"{split}.parquet", tmp_path).num_rows == count
        assert load("json", exported / "sft-openai" / f"{split}.jsonl", tmp_path).num_rows == count
        assert pq.read_table(exported / "hf" / hf.DATA_PATH.format(split=split)).num_rows == count
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_search_r1_rows_have_its_schema_and_score_one_under_its_own_reward(exported):
    table = pq.read_table(exported / "search-r1" / "train.parquet")
    assert table.column_names == ["id", "question", "golden_answers", "data_source", "prompt", "ability",
                                  "reward_model", "extra_info"]
    for split in SPLITS:
        for index, row in enumerate(rows(exported / "search-r1" / f"{split}.parquet")):
            assert row["data_source"] == "hotpotqa" and row["ability"] == "fact-reasoning"
            assert row["prompt"] == [{"role": "user", "content": make_prefix(row, template_type="base")}]
            assert row["question"].endswith("?")
            ground_truth = row["reward_model"]["ground_truth"]
            assert row["reward_model"]["style"] == "rule" and ground_truth["target"] == row["golden_answers"]
            assert row["extra_info"]["split"] == split and row["extra_info"]["index"] == index
            # The trainer decodes prompt + response; its example "<answer> Beijing </answer>" is in the prompt,
            # and compute_score_em scores the last <answer> of the whole string.
            prompt = row["prompt"][0]["content"]
            for gold in ground_truth["target"]:
                assert compute_score_em(prompt + f"<think>...</think> <answer> {gold} </answer>", ground_truth) == 1
                assert em_check(gold, ground_truth["target"]) == 1
            assert compute_score_em(prompt + "<answer> Beijing </answer>", ground_truth) == 0


def test_search_r1_extra_info_carries_the_sage_provenance(exported, kept):
    for row in rows(exported / "search-r1" / "train.parquet") + rows(exported / "search-r1" / "test.parquet"):
        info, record = row["extra_info"], kept[row["question"]]
        assert info["seed_id"] == record["seed_id"] and info["target_searches"] == record["target"]
        assert info["searches"] == record["searches"] >= record["target"]
        assert (info["pass_at_k"], info["avg_at_k"]) == (record["pass_at_k"], record["avg_at_k"])
        assert info["supporting_ids"] == record["supporting_ids"] and info["rounds_used"] == record["rounds_used"]
        assert info["lms"] == record["lms"] and info["k"] == 4
        assert info["run"] == "run" and info["mlflow_run_id"] == ""
        assert row["golden_answers"][0] == record["answer"]


def test_search_r1_rows_claim_the_chosen_dataset_name(run_dir, tmp_path):
    result = invoke("export", run_dir, "--format", "search-r1,verl", "--out", tmp_path / "out",
                    "--data-source", "musique")
    assert result.exit_code == 0, result.output
    assert {r["data_source"] for r in rows(tmp_path / "out" / "search-r1" / "train.parquet")} == {"musique"}
    assert {r["data_source"] for r in rows(tmp_path / "out" / "verl" / "train.parquet")} == {"searchR1_musique"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".sage-output.json", "export.json",
                                                                     "removed.jsonl", "search-r1",
                                                                     "verl"]


def test_verl_rows_are_what_verls_own_converter_makes_of_the_search_r1_rows(exported):
    for split in SPLITS:
        ours = rows(exported / "verl" / f"{split}.parquet")
        theirs = [process_single_row(row, current_split_name=split, row_index=index).to_dict()
                  for index, row in enumerate(rows(exported / "search-r1" / f"{split}.parquet"))]
        assert len(ours) == len(theirs)
        for row, expected in zip(ours, theirs):
            assert "agent_name" not in row  # as verl's own rows: the loop comes from default_agent_loop
            for key in ("data_source", "prompt", "ability", "reward_model", "metadata"):
                assert row[key] == expected[key], key
            assert {k: row["extra_info"][k] for k in expected["extra_info"]} == expected["extra_info"]
            ground_truth = row["reward_model"]["ground_truth"]
            response = f"<think>...</think>\n<answer> {ground_truth['target'][0]} </answer>"
            assert verl_compute_score(response, ground_truth) == 1.0
            assert verl_compute_score("<answer> Beijing </answer>", ground_truth) == 0
    assert "verl.tools.search_tool.SearchTool" in (exported / "verl" / "search_tool_config.yaml").read_text()


def check_demonstration(messages: list[dict], record: dict, arguments) -> None:
    """The chat is the record's shortest correct attempt, tool results byte for byte as the agent saw them."""
    attempt = shortest_correct_attempt(record)
    searches = [step for step in attempt["steps"] if step["tool"] == "search"]
    assert attempt["searches"] == record["searches"] == len(searches)
    assert messages[0]["role"] == "system" and messages[1] == {**messages[1], "role": "user",
                                                              "content": record["question"]}
    calls = [m for m in messages if m["role"] == "assistant" and m.get("tool_calls")]
    results = [m for m in messages if m["role"] == "tool"]
    assert len(calls) == len(results) == len(searches)
    for call, result, step in zip(calls, results, searches):
        [tool_call] = call["tool_calls"]
        assert tool_call["type"] == "function" and tool_call["function"]["name"] == "search"
        assert arguments(tool_call["function"]["arguments"]) == {"query": step["query"]}
        assert (call.get("content") or "") == step["thought"]
        assert result["content"] == step["observation"]
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"] == attempt["answer"]


def test_sft_openai_lines_are_chats_with_string_arguments_and_tools(exported, kept):
    for split in SPLITS:
        for line in (exported / "sft-openai" / f"{split}.jsonl").read_text().splitlines():
            example = json.loads(line)
            assert set(example) == {"messages", "tools"}  # OpenAI's file check rejects other keys
            record = kept[example["messages"][1]["content"]]
            check_demonstration(example["messages"], record, json.loads)  # arguments: a JSON string
            ids = [m["tool_calls"][0]["id"] for m in example["messages"] if m.get("tool_calls")]
            assert ids == [m["tool_call_id"] for m in example["messages"] if m["role"] == "tool"]
            assert len(set(ids)) == len(ids)
            [tool] = example["tools"]
            assert tool["type"] == "function" and tool["function"]["name"] == "search"
            assert tool["function"]["parameters"]["required"] == ["query"]
            assert "up to 3 passages" in tool["function"]["description"]


def test_sft_trl_rows_have_json_tool_calls_and_a_tools_column(exported, kept, tmp_path):
    dataset = load("parquet", exported / "sft-trl" / "train.parquet", tmp_path)
    assert set(dataset.column_names) == {"messages", "tools"}
    assert isinstance(dataset.features["tools"].feature, datasets.Json)
    for example in dataset:
        record = kept[example["messages"][1]["content"]]
        check_demonstration(example["messages"], record, lambda arguments: arguments)  # a JSON object
        assert [m["name"] for m in example["messages"] if m["role"] == "tool"] == ["search"] * record["searches"]
        assert example["tools"][0]["function"]["name"] == "search"


def rl_row_and_record(rl_rows: list[dict], prompt: list[dict], kept: dict) -> tuple[dict, dict]:
    """The RL export's row with this prompt, and the kept record it came from."""
    (row,) = [r for r in rl_rows if list(r["prompt"]) == list(prompt)]
    (record,) = [r for r in kept.values() if r["seed_id"] == row["extra_info"]["seed_id"]]
    return row, record


def searches_of(record: dict) -> list[dict]:
    return [step for step in shortest_correct_attempt(record)["steps"] if step["tool"] == "search"]


def test_sft_search_r1_rows_are_search_r1_trajectories_that_score_one_under_its_reward(exported, kept, tmp_path):
    rl_rows = [r for split in SPLITS for r in rows(exported / "search-r1" / f"{split}.parquet")]
    count = 0
    for split in SPLITS:
        for example in load("parquet", exported / "sft-search-r1" / f"{split}.parquet", tmp_path):
            row, record = rl_row_and_record(rl_rows, example["prompt"], kept)  # the Search-R1 export's prompt
            [turn] = example["completion"]
            trajectory, steps = turn["content"], searches_of(record)
            assert turn["role"] == "assistant" and trajectory.startswith("<think>")
            assert re.findall(r"<search> (.*?) </search>", trajectory) == [s["query"].strip() for s in steps]
            assert re.findall(r"<information>(.*?)</information>", trajectory, re.S) == [
                s["observation"].strip() for s in steps]
            assert trajectory.endswith(f"<answer> {shortest_correct_attempt(record)['answer'].strip()} </answer>")
            # rendered by TRL's Qwen2.5 training template; the trainer scores the decoded prompt + response
            text, trained = render(example["prompt"] + example["completion"])
            assert trained == ["\n" + trajectory + "<|im_end|>\n"]  # the whole trajectory is trained on
            assert compute_score_em(text, row["reward_model"]["ground_truth"]) == 1
            assert compute_score_em(text.replace(trajectory, "<answer> Beijing </answer>"),
                                    row["reward_model"]["ground_truth"]) == 0
            count += 1
    assert count == len(kept)


def test_sft_verl_rows_call_verls_search_tool_and_their_last_turn_scores_one(exported, kept, tmp_path):
    import yaml

    rl_rows = [r for split in SPLITS for r in rows(exported / "verl" / f"{split}.parquet")]
    schema = yaml.safe_load((exported / "verl" / "search_tool_config.yaml").read_text())["tools"][0]["tool_schema"]
    count = 0
    for split in SPLITS:
        for example in load("parquet", exported / "sft-verl" / f"{split}.parquet", tmp_path):
            messages = example["messages"]
            row, record = rl_row_and_record(rl_rows, [{k: m[k] for k in ("role", "content")} for m in messages[:2]],
                                            kept)  # the verl export's system and user turns
            assert example["tools"] == [schema]
            calls = [m for m in messages if m["role"] == "assistant" and m.get("tool_calls")]
            results = [m for m in messages if m["role"] == "tool"]
            steps = searches_of(record)
            assert [c["tool_calls"][0]["function"] for c in calls] == [
                {"name": "search", "arguments": {"query_list": [s["query"].strip()]}} for s in steps]
            assert [json.loads(r["content"])["result"] for r in results] == [s["observation"].strip() for s in steps]
            text, trained = render(messages, example["tools"])
            assert '<tool_call>\n{"name": "search", "arguments": {"query_list": [' in text
            final = messages[-1]["content"]
            assert trained[-1] == "\n" + final + "<|im_end|>\n" and len(trained) == len(calls) + 1
            assert verl_compute_score(trained[-1], row["reward_model"]["ground_truth"]) == 1.0
            assert verl_compute_score(trained[-2], row["reward_model"]["ground_truth"]) == 0  # a search turn
            count += 1
    assert count == len(kept)


def test_the_trainer_settings_fit_every_exported_trajectory_and_reach_the_card(exported, kept, tmp_path):
    from sage_dspy.dataset.settings import CHARS_PER_TOKEN

    settings = json.loads((exported / exporting.MANIFEST).read_text())["trainer_settings"]
    most = max(record["searches"] for record in kept.values())
    assert {int(n) for n in settings["searches"]} == {r["searches"] for r in kept.values()} and most >= 2
    assert sum(settings["searches"].values()) == len(kept)
    search_r1_needs, verl_needs = settings["search_r1"], settings["verl"]
    assert search_r1_needs["max_turns"] == most and verl_needs[
        "actor_rollout_ref.rollout.multi_turn.max_assistant_turns"] == most + 1
    assert verl_needs["actor_rollout_ref.rollout.agent.default_agent_loop"] == "tool_agent"
    for split in SPLITS:
        for example in load("parquet", exported / "sft-search-r1" / f"{split}.parquet", tmp_path):
            trajectory = example["completion"][0]["content"]
            assert trajectory.count("<search>") <= search_r1_needs["max_turns"]
            prompt = len(example["prompt"][0]["content"])
            assert prompt / CHARS_PER_TOKEN <= search_r1_needs["data.max_start_length"]
            assert (prompt + len(trajectory)) / CHARS_PER_TOKEN <= search_r1_needs["data.max_prompt_length"]
            for block in re.findall(r"<information>.*?</information>", trajectory, re.S):
                assert len(block) / CHARS_PER_TOKEN <= search_r1_needs["data.max_obs_length"]
        for example in load("parquet", exported / "sft-verl" / f"{split}.parquet", tmp_path):
            turns = example["messages"][2:]
            assert sum(m["role"] == "assistant" for m in turns) <= verl_needs[
                "actor_rollout_ref.rollout.multi_turn.max_assistant_turns"]
            assert max(len(m["content"]) for m in turns if m["role"] == "tool") <= verl_needs[
                "actor_rollout_ref.rollout.multi_turn.max_tool_response_length"]
            written = sum(len(m["content"] or "") for m in turns)
            assert written / CHARS_PER_TOKEN <= verl_needs["data.max_response_length"]
    card = (exported / "hf" / "README.md").read_text()
    assert f"max_turns={most}\n" in card and f"max_assistant_turns={most + 1}\n" in card


def test_hf_folder_loads_by_its_card_and_the_card_has_the_metadata(exported, run_dir, tmp_path):
    folder = exported / "hf"
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path))
    manifest = json.loads((exported / exporting.MANIFEST).read_text())
    assert {split: loaded[split].num_rows for split in loaded} == manifest["splits"]
    assert {"question", "answer", "answers", "seed_id", "supporting_ids", "lms", "pair_id"} <= set(
        loaded["train"].column_names)
    card = DatasetCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "cc0-1.0"  # the bundled corpus's licence
    assert data["tags"] == ["synthetic", "sage"] and data["annotations_creators"] == ["machine-generated"]
    assert data["task_categories"] == ["question-answering"] and data["size_categories"] == ["n<1K"]
    assert data["source_datasets"] == ["original"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["corpus"]["fingerprint"] in card.text and "offline/sage-rules-v1" in card.text
    assert "| S=2 |" in card.text and "| S=3 |" in card.text and "| all | 8 |" in card.text
    assert "MLflow run id | not tracked" in card.text


def questions_by_split(folder: Path, cache: Path) -> dict[str, list[str]]:
    """`load_dataset(<out>/hf)` as a user calls it, every load in this process sharing one cache."""
    loaded = datasets.load_dataset(str(folder), cache_dir=str(cache))
    return {split: sorted(loaded[split]["question"]) for split in loaded}


def test_two_exports_and_a_re_export_each_load_their_own_rows(run_dir, tmp_path):
    """One `datasets` cache for every load, as in a user's process: no export reads another's rows."""
    cache, first, second = tmp_path / "cache", tmp_path / "first", tmp_path / "second"
    assert invoke("export", run_dir, "--format", "hf", "--out", first, "--splits", "train=0.75,test=0.25",
                  "--split-seed", 0).exit_code == 0
    assert invoke("export", run_dir, "--format", "hf", "--out", second, "--splits", "train=0.5,holdout=0.5",
                  "--split-seed", 3).exit_code == 0
    expected = {out: {split: sorted(r["question"] for r in rows(out / "hf" / hf.DATA_PATH.format(split=split)))
                      for split in json.loads((out / exporting.MANIFEST).read_text())["splits"]}
                for out in (first, second)}
    assert questions_by_split(first / "hf", cache) == expected[first]
    assert questions_by_split(second / "hf", cache) == expected[second]
    assert set(expected[second]) == {"train", "holdout"}  # a split name of the user's own is found too
    result = invoke("export", run_dir, "--format", "hf", "--out", first, "--splits", "train=0.5,test=0.5")
    assert result.exit_code == 0, result.output
    again = {split: sorted(r["question"] for r in rows(first / "hf" / hf.DATA_PATH.format(split=split)))
             for split in ("train", "test")}
    assert again != expected[first] and questions_by_split(first / "hf", cache) == again


@pytest.mark.parametrize("args, expected", [
    (["--splits", "train=0.5,test=0.5", "--min-per-split", "5"], "pairs, fewer than --min-per-split 5 ("),
    (["--splits", "train=0.9,dev=0.05,test=0.05"], "would get 0 pairs, fewer than --min-per-split 1"),
    (["--min-per-split", "0"], "would allow empty splits"),
])
def test_a_split_below_the_minimum_is_refused_and_nothing_is_written(run_dir, kept, tmp_path, args, expected):
    assert len(kept) >= 6  # 5 pairs cannot be in each of two halves
    result = invoke("export", run_dir, "--out", tmp_path / "out", *args)
    assert_one_line_error(result, expected)
    if "--min-per-split" in args and "5" in args:
        assert f"({len(kept)} in all)" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == []


def test_the_card_names_a_local_corpus_by_its_file_name_and_says_what_the_splits_keep_apart(run_dir, tmp_path):
    from sage_dspy.dataset.card import dataset_card
    from sage_dspy.dataset.context import ExportContext
    from sage_dspy.dataset.pairs import Run, read_run

    run, pairs = read_run(run_dir)
    private = str(tmp_path / "home" / "someone" / "corpora" / "wiki.jsonl")
    local = Run(run.folder, {**run.settings, "corpus": private}, run.summary, run.mlflow_run_id)
    context = ExportContext({run.name: local}, "hotpotqa", "unknown", {"train": 1.0}, 0)
    text = dataset_card({"train": len(pairs)}, pairs, context).content
    assert "`wiki.jsonl`" in text and str(tmp_path) not in text and "someone" not in text
    assert run.summary["corpus"]["fingerprint"] in text  # what identifies the corpus without its path
    assert "seed- and passage-disjoint" in text and "not answer-disjoint" in text
    assert "configs:" not in text  # splits come from the file names (formats/hf.py)
    gone = Run(run.folder, {**run.settings, "corpus": "/home/someone/corpora/wiki-folder"}, run.summary, "")
    text = dataset_card({"train": len(pairs)}, pairs, ExportContext({run.name: gone}, "hotpotqa", "unknown",
                                                                    {"train": 1.0}, 0)).content
    assert "`wiki-folder`" in text and "someone" not in text  # a folder no longer there is still local


def test_our_verl_rows_mix_with_verls_own_and_take_one_agent_loop(exported):
    theirs = [process_single_row(row, current_split_name="train", row_index=index).to_dict()
              for index, row in enumerate(rows(exported / "search-r1" / "train.parquet"))]
    mixed = datasets.concatenate_datasets([datasets.Dataset.from_parquet(str(exported / "verl" / "train.parquet")),
                                           datasets.Dataset.from_list(theirs)])
    # verl's agent loop fills agent_name from rollout.agent.default_agent_loop only when no row has the column:
    # a column on ours alone would give theirs None, which no agent loop is registered under.
    assert "agent_name" not in mixed.column_names and mixed.num_rows == 2 * len(theirs)


def test_splits_keep_every_test_passage_out_of_training_evidence(exported):
    split_rows = {split: rows(exported / "hf" / hf.DATA_PATH.format(split=split)) for split in SPLITS}
    train = set().union(*(evidence(r) for r in split_rows["train"]))
    assert split_rows["test"] and not any(evidence(r) & train for r in split_rows["test"])


def test_several_runs_export_together_and_shared_seeds_stay_in_one_split(run_dir, kept, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(run_dir, again)  # the same seeds: every pair shares evidence with its copy
    (again / "mlflow.json").write_text(json.dumps({"run_id": "abc123"}))
    # Other questions and answers on the same seeds, or the copies would go as near-duplicates of the originals.
    reworded = [json.loads(line) for line in (again / "records.jsonl").read_text().splitlines()]
    for number, record in enumerate(reworded):
        record.update(question=f"Unrelated puzzle {number} {'zebra ' * number}asks which lighthouse?",
                      answer=f"lighthouse {number}")
    (again / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reworded))
    result = invoke("export", run_dir, again, "--format", "search-r1,hf", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    by_split = {split: rows(tmp_path / "out" / "search-r1" / f"{split}.parquet") for split in SPLITS}
    every = by_split["train"] + by_split["test"]
    assert len(every) == 2 * len(kept)
    assert len({r["id"] for r in every}) == len(every)
    for split, split_rows in by_split.items():
        seeds = {(r["extra_info"]["run"], r["extra_info"]["seed_id"]) for r in split_rows}
        assert {seed for run, seed in seeds if run == "run"} == {seed for run, seed in seeds if run == "again"}
    assert {r["extra_info"]["mlflow_run_id"] for r in every if r["extra_info"]["run"] == "again"} == {"abc123"}
    assert "`abc123`" in (tmp_path / "out" / "hf" / "README.md").read_text()


def test_a_new_export_replaces_an_earlier_one_in_the_same_folder(run_dir, tmp_path):
    out = tmp_path / "out"
    assert invoke("export", run_dir, "--format", ALL_FORMATS, "--out", out).exit_code == 0
    result = invoke("export", run_dir, "--format", "search-r1", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [".sage-output.json", "export.json", "removed.jsonl", "search-r1"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ------------------------------------------------------------------------------------------ bad input

def in_progress(run_dir: Path, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / how
    shutil.copytree(run_dir, folder)
    records = folder / "records.jsonl"
    if how == "appending":  # a resumed run has appended a seed it has not decided yet
        record = json.loads(records.read_text().splitlines()[0])
        record.update(seed_id="w999", kept=False, drop_reason="")
        records.write_text(records.read_text() + json.dumps(record) + "\n")
    elif how == "torn":  # killed mid-write
        records.write_text(records.read_text() + '{"seed_id": "w9')
    elif how == "no-summary":  # killed before the end
        (folder / "summary.json").unlink()
    return folder


@pytest.mark.parametrize("how", ["appending", "torn", "no-summary"])
def test_a_run_in_progress_is_refused_in_one_line(run_dir, tmp_path, how):
    result = invoke("export", in_progress(run_dir, tmp_path, how), "--out", tmp_path / "out")
    assert_one_line_error(result, "still in progress")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, expected", [
    (["--format", "search-r1,alpaca"], "unknown export format(s) alpaca"),
    (["--splits", "train=0.8,test=0.1"], "sum to 0.9, not 1"),
    (["--splits", "train=0.9,test=0.1,train=0"], "repeated"),
    (["--data-source", "squad"], "unknown data source 'squad'"),
])
def test_bad_options_are_one_line_and_write_nothing(run_dir, tmp_path, args, expected):
    result = invoke("export", run_dir, "--out", tmp_path / "out", *args)
    assert_one_line_error(result, expected)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_folder_without_records_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(invoke("export", tmp_path / "empty", "--out", tmp_path / "out"), "holds no records.jsonl")
    (tmp_path / "empty" / "records.jsonl").write_text("")
    assert_one_line_error(invoke("export", tmp_path / "empty", "--out", tmp_path / "out"), "holds no records")
    assert not (tmp_path / "out").exists()


def test_an_occupied_folder_that_is_no_export_is_refused(run_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert_one_line_error(invoke("export", run_dir, "--out", tmp_path / "out"), "holds files that are not a sage export")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


def test_a_failure_while_writing_leaves_the_earlier_export_whole(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke("export", run_dir, "--format", "search-r1", "--out", out).exit_code == 0
    before = (out / "search-r1" / "train.parquet").read_bytes()

    def broken(splits, folder, context):
        folder.mkdir(parents=True)
        (folder / "train.parquet").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(search_r1, "write", broken)
    with pytest.raises(OSError):
        exporting.export([run_dir], out, ("search-r1",), {"train": 1.0})
    assert (out / "search-r1" / "train.parquet").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ------------------------------------------------------------------------------ pure parts, no run

def attempt(answer: str, correct: bool, tools: list[str], error: str = "") -> dict:
    steps = [{"thought": f"t{i}", "tool": tool, "query": f"q{i}", "observation": f"o{i}"}
             for i, tool in enumerate(tools)]
    return {"answer": answer, "correct": correct, "error": error, "steps": steps + [
        {"thought": "done", "tool": "finish", "query": "", "observation": "Completed."}],
        "searches": sum(tool == "search" for tool in tools)}


def test_the_demonstration_is_the_shortest_correct_attempt_that_only_searched():
    attempts = [attempt("x", False, ["search"]), attempt("3,400", True, ["search"] * 3),
                attempt("3400", True, ["search", "lookup"]), attempt("3400", True, ["search"] * 2),
                attempt("3400", True, ["search"] * 2)]
    record = {"question": "q?", "rounds": [{"attempts": []}, {"attempts": attempts}]}
    assert shortest_correct_attempt(record) is attempts[3]  # [2] made up a tool; [4] ties with [3], comes later
    assert shortest_correct_attempt({"rounds": [{"attempts": attempts[:1]}]}) is None
    assert shortest_correct_attempt({"rounds": []}) is None


def test_gold_answers_add_the_wordings_the_judge_accepted_once_each():
    from sage_dspy.dataset.provenance import gold_answers

    attempts = [attempt("3400 students", True, ["search"]), attempt("3,400", True, ["search"]),
                attempt("900", False, ["search"]), attempt("3400 students.", True, ["search"]),
                attempt("four", True, ["search"], error="judge failed: timeout")]
    record = {"answer": "3,400", "rounds": [{"attempts": attempts}]}
    assert gold_answers(record) == ["3,400", "3400 students"]
    assert em_check("3400 students", gold_answers(record)) == 1 and em_check("3400 students", ["3,400"]) == 0


# ------------------------------------------------------------------------- near-duplicates, contamination

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"


def test_a_copied_run_exports_once_and_every_copy_is_recorded_as_a_duplicate(run_dir, kept, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(run_dir, again)
    result = invoke("export", run_dir, again, "--format", "search-r1", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    every = [r for split in SPLITS for r in rows(tmp_path / "out" / "search-r1" / f"{split}.parquet")]
    assert len(every) == len(kept) and {r["extra_info"]["run"] for r in every} == {"run"}
    removed = [json.loads(line) for line in (tmp_path / "out" / exporting.REMOVED).read_text().splitlines()]
    assert len(removed) == len(kept)
    for removal in removed:
        assert removal["removed"]["source_run"] == "again" and removal["duplicate_of"]["source_run"] == "run"
        assert removal["removed"]["question"] == removal["duplicate_of"]["question"]
        assert removal["rule"] in ("same answer, same supporting passages", "near-duplicate question")
    assert json.loads((tmp_path / "out" / exporting.MANIFEST).read_text())["removed"] == \
        exporting.removal_counts(removed)
    assert f"left out {len(kept)} pairs (each in removed.jsonl)" in " ".join(result.stdout.split())


def test_decontaminate_leaves_out_pairs_that_match_a_benchmark_and_names_the_item(run_dir, kept, tmp_path):
    planted = next(iter(kept.values()))
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": "An unrelated benchmark question about tides?", "answer": "x"}) + "\n"
                     + json.dumps({"question": planted["question"].upper(), "answer": planted["answer"]}) + "\n")
    hotpot = BENCHMARKS / "hotpotqa_500.jsonl"  # a real benchmark beside it, where ../shared/data is present
    real = ["--decontaminate", hotpot] if hotpot.is_file() else []
    result = invoke("export", run_dir, "--format", "search-r1", "--out", tmp_path / "out",
                    "--splits", "train=0.5,test=0.5", "--decontaminate", bench, *real)
    assert result.exit_code == 0, result.output
    every = [r for split in SPLITS for r in rows(tmp_path / "out" / "search-r1" / f"{split}.parquet")]
    removals = [json.loads(line) for line in (tmp_path / "out" / exporting.REMOVED).read_text().splitlines()]
    assert len(every) == len(kept) - len(removals) and planted["seed_id"] not in {r["extra_info"]["seed_id"]
                                                                                 for r in every}
    (removal,) = [r for r in removals if r["removed"]["seed_id"] == planted["seed_id"]]
    assert removal["rule"] == "contamination: exact question" and removal["benchmark"] == "bench"
    assert removal["item"] == 1
    # the offline LM writes its questions from one template: the others share wording with the planted one,
    # but not what it names, so they stay (before issue 24, one shared 8-gram removed them)
    assert removals == [removal] and len(every) == len(kept) - 1
    assert removal["evidence"]["missing_anchors"] == [] and removal["evidence"]["coverage"] == 1.0
    assert "1 contamination: exact question" in " ".join(result.stdout.split())


def test_a_benchmark_without_a_question_field_is_refused_before_anything_is_written(run_dir, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"text": "no question here"}) + "\n")
    result = invoke("export", run_dir, "--out", tmp_path / "out", "--decontaminate", bench)
    assert_one_line_error(result, "question")
    assert not (tmp_path / "out").exists()


def test_an_empty_last_split_is_written_with_the_schema_of_the_others(tmp_path):
    from sage_dspy.dataset.formats.files import write_parquet
    assert write_parquet({"train": [{"a": 1}, {"a": 2}], "test": []}, tmp_path) == {"train": 2, "test": 0}
    empty = pq.read_table(tmp_path / "test.parquet")
    assert empty.num_rows == 0 and empty.schema.names == ["a"]


# --- --push-to-hub ----------------------------------------------------------------------------------------
HUB_TOKEN = "hf_canaryTokenThatMustNeverBePrinted0"


@pytest.mark.parametrize("env, args, expected", [
    ({}, ["--push-to-hub", "me/sage-demo"], "HF_HUB_OFFLINE is set"),  # sage's default: offline
    ({"HF_HUB_OFFLINE": "0"}, ["--push-to-hub", "me/sage-demo"], "needs a write token in HF_TOKEN"),
    ({"HF_HUB_OFFLINE": "0", "HF_TOKEN": HUB_TOKEN}, ["--push-to-hub", "not a repo"], "is not a repository id"),
    ({"HF_HUB_OFFLINE": "0", "HF_TOKEN": HUB_TOKEN}, ["--push-to-hub", "me/x", "--format", "search-r1"],
     "add hf to --format"),
])
def test_a_push_that_cannot_work_is_refused_before_anything_is_written(run_dir, tmp_path, monkeypatch, env, args,
                                                                        expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = invoke("export", run_dir, "--out", tmp_path / "out", *args)
    assert_one_line_error(result, expected)
    assert not (tmp_path / "out").exists() and HUB_TOKEN not in result.output


def test_a_push_the_hub_refuses_is_one_line_and_the_export_stays(run_dir, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    with socket.socket() as probe:  # a closed port on 127.0.0.1 stands in for an unreachable Hub
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{closed}")
    result = invoke("export", run_dir, "--out", tmp_path / "out", "--push-to-hub", "me/sage-demo")
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: the Hub refused the push to me/sage-demo"), errors
    assert "exported" in result.stdout and HUB_TOKEN not in result.output  # the table of what was written
    assert datasets.load_dataset(str(tmp_path / "out" / "hf"))["train"].num_rows > 0  # the export is whole
