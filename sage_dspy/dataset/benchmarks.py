"""Benchmarks to decontaminate against: JSON, JSON Lines or parquet files, a folder of data files, or a
Hugging Face dataset already in the local cache (`NAME[:CONFIG][@SPLIT]`, read offline). Each becomes
items of a question and its gold answers, whatever the source calls those fields.

RL training files hold the question in a chat (`prompt` or `messages`: Search-R1's and verl's parquet, and
DeepResearcher's files built the same way). There the question is the last user turn as their preprocessing
wrote it, less the instruction it was wrapped in (Search-R1's `nq_search.py` prefix and trailing newline,
verl's `preprocess_search_r1_dataset.py` prefix), and the answers come from `reward_model.ground_truth`
(`{"target": [...]}`, a list or a string) or `golden_answers`.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy.jsonl import JsonlError, read_jsonl

QUESTION_FIELDS = ("question", "query", "problem", "Prompt")
ANSWER_FIELDS = ("answer", "answers", "golden_answers", "Answer")
CHAT_FIELDS = ("prompt", "messages")
FILE_SUFFIXES = (".json", ".jsonl", ".parquet")


class BenchmarkError(SageError, ValueError):
    """A benchmark that cannot be read; the message names the source and the fix."""


@dataclass(frozen=True)
class BenchmarkItem:
    index: int  # row in the source (0-based), so a flag can be looked up there
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Benchmark:
    name: str
    source: str
    items: tuple[BenchmarkItem, ...]


def load_benchmark(source: str | Path) -> Benchmark:
    """A file, a folder of data files (`DIR[@SPLIT]`, read by `datasets`) or a cached Hugging Face dataset
    `NAME[:CONFIG][@SPLIT]`; BenchmarkError names what is wrong and what to give instead."""
    text = str(source)
    path = Path(text).expanduser()
    base, _, split = text.partition("@")
    if path.is_file():
        name, rows = path.stem, _file_rows(path)
    elif Path(base).expanduser().is_dir():
        name = Path(base).name + (f"@{split}" if split else "")
        rows = _hub_rows(str(Path(base).expanduser()), None, split or None, text)
    elif path.suffix in FILE_SUFFIXES or text.startswith(("/", ".", "~")):
        raise BenchmarkError(f"benchmark {text} does not exist; give a JSON, JSONL or parquet file, or a cached "
                             "Hugging Face dataset name")
    else:
        repo, _, config = base.partition(":")
        name, rows = text, _hub_rows(repo, config or None, split or None, text)
    return Benchmark(name, text, _items(rows, text))


def _file_rows(path: Path) -> list[dict]:
    if path.suffix not in FILE_SUFFIXES:
        raise BenchmarkError(f"benchmark {path} is not JSON, JSONL or parquet; convert it to one of those")
    if path.suffix == ".jsonl" and path.is_file():  # line by line: an error names its line
        try:
            return read_jsonl(path, label="benchmark", fix="fix or re-export it")
        except JsonlError as error:
            raise BenchmarkError(str(error)) from None
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq  # only for parquet files

            return pq.read_table(path).to_pylist()
        content = path.read_text(encoding="utf-8")
    except Exception as error:  # unreadable, not UTF-8, not parquet (pyarrow's ArrowInvalid)
        raise BenchmarkError(f"benchmark {path} cannot be read ({_first_line(error)}); check the file") from None
    try:
        try:
            data = json.loads(content)
        except json.JSONDecodeError:
            return _json_lines(content)  # JSON Lines under a .json name, as many benchmark dumps are
    except json.JSONDecodeError as error:
        raise BenchmarkError(f"benchmark {path} is not valid JSON or JSON Lines ({error}); fix or re-export "
                             "it") from None
    if isinstance(data, dict):  # {"version": ..., "data": [...]}: the one list of rows it holds
        tables = [value for value in data.values() if isinstance(value, list) and value
                  and all(isinstance(row, dict) for row in value)]
        return tables[0] if len(tables) == 1 else [data]
    return data if isinstance(data, list) else []


def _json_lines(content: str) -> list:
    return [json.loads(line) for line in content.splitlines() if line.strip()]


def _hub_rows(repo: str, config: str | None, split: str | None, source: str) -> list[dict]:
    import datasets  # only here: slow to import, and offline by sage_dspy's environment defaults

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the command's output is its table; its errors are one line
    try:
        loaded = datasets.load_dataset(repo, config, split=split)
    except Exception as error:  # datasets raises many kinds for "not cached" (ConnectionError, FileNotFound...)
        raise BenchmarkError(
            f"`datasets` could not read benchmark {source} offline ({_first_line(error)}); give a JSON, JSONL "
            "or parquet file, or a dataset name already downloaded to the Hugging Face cache") from None
    finally:
        if bars:
            datasets.enable_progress_bars()
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise BenchmarkError(f"benchmark {source} has splits {', '.join(loaded)}; name one, as in "
                                 f"{source}@{next(iter(loaded))}")
        loaded = next(iter(loaded.values()))
    return loaded.to_list()


def _first_line(error: Exception) -> str:
    """Errors go out as one line; library messages sometimes run to several."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _field(rows: list[dict], names: tuple[str, ...]) -> str | None:
    """The first of `names` some row has; else the first a row has in another case ("Question")."""
    present = {key for row in rows[:100] if isinstance(row, dict) for key in row}
    for name in names:
        if name in present:
            return name
    lowered = {key.lower(): key for key in sorted(present)}
    return next((lowered[name.lower()] for name in names if name.lower() in lowered), None)


def _answers(value) -> tuple[str, ...]:
    """A string, a list of them, or a dict of `value` / `text` / `aliases` (TriviaQA, SQuAD layouts)."""
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(a for key in ("value", "text", "aliases") for a in _answers(value.get(key)))
    if isinstance(value, (list, tuple)):
        return tuple(a for part in value for a in _answers(part))
    return (str(value),)


def _is_chat(value) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(turn, dict) and "role" in turn and "content" in turn for turn in value)


def _instructions() -> tuple[tuple[str, str], ...]:
    """(prefix, suffix) around the question in the RL formats' user turns, as their preprocessing writes it."""
    from sage_dspy.dataset.formats import search_r1, verl  # the exporters quote the consumers' scripts

    before, after = search_r1.PREFIX.split("{question}")
    return (before, after), (verl.USER_CONTENT_PREFIX.rstrip("\n"), "")


def chat_question(turns: list[dict]) -> str:
    """The last user turn, its known instruction wrapper taken off (exactly; any other text is kept whole)."""
    content = next((str(turn["content"]) for turn in reversed(turns) if turn["role"] == "user"), "")
    for before, after in _instructions():
        if content.startswith(before) and content.endswith(after):
            return content[len(before):len(content) - len(after)]
    return content


def _chat_answers(row: dict) -> tuple[str, ...]:
    reward = row.get("reward_model")
    truth = reward.get("ground_truth") if isinstance(reward, dict) else None
    if isinstance(truth, dict):
        truth = truth.get("target")
    return _answers(truth) or _answers(row.get("golden_answers"))


def _chat_items(rows: list[dict], field_name: str) -> tuple[BenchmarkItem, ...]:
    items = []
    for index, row in enumerate(rows):
        turns = row.get(field_name) if isinstance(row, dict) else None
        question = chat_question(turns) if _is_chat(turns) else ""
        if question.strip():
            items.append(BenchmarkItem(index, question, _chat_answers(row)))
    return tuple(items)


def _items(rows: list[dict], source: str) -> tuple[BenchmarkItem, ...]:
    if not rows:
        raise BenchmarkError(f"benchmark {source} has no rows; give a file with one question per row")
    chat_field = _field(rows, CHAT_FIELDS)
    question_field = _field(rows, QUESTION_FIELDS)
    if chat_field and any(_is_chat(row.get(chat_field)) for row in rows[:100] if isinstance(row, dict)) and (
            question_field is None or question_field == chat_field):
        return _chat_items(rows, chat_field)
    if question_field is None:
        found = sorted({key for row in rows[:100] if isinstance(row, dict) for key in row})
        raise BenchmarkError(f"benchmark {source} has no question field (looked for {', '.join(QUESTION_FIELDS)};"
                             f" found {', '.join(found) or 'none'}); rename its question field to 'question'")
    answer_field = _field(rows, ANSWER_FIELDS)
    return tuple(BenchmarkItem(index, str(row[question_field]), _answers(row.get(answer_field)))
                 for index, row in enumerate(rows)
                 if isinstance(row, dict) and str(row.get(question_field) or "").strip())
