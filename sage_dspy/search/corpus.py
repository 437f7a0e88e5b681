"""Load any corpus into passages: JSONL/JSON/parquet/CSV files, folders of text, or Hugging Face datasets.

Known real layouts (MuSiQue, HotpotQA, Search-R1's wiki-18 `{id, contents: '"Title"\ntext'}`,
`{title: [sentences]}`, `[{title, text}]`) are recognised without
options; other records have their text, title and id fields guessed or named. Every problem is a
`CorpusError` whose message is one line: what is wrong and how to fix it.
"""

import contextlib
import hashlib
import json
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy.jsonl import decoding_problem, iter_jsonl, JsonlError
from sage_dspy.search.passages import Passage, content_id

BUNDLED_CORPUS = Path(__file__).parents[1] / "data" / "world.jsonl"

TEXT_FIELDS = ("text", "paragraph_text", "passage", "contents", "content", "body")
TITLE_FIELDS = ("title", "name", "heading")
ID_FIELDS = ("id", "_id", "doc_id", "passage_id")
RECORD_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
TEXT_SUFFIXES = (".txt", ".md")


class CorpusError(SageError):
    """A corpus that cannot be loaded. str(error) is ONE line naming the problem and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True)
class _Raw:
    """One text as found in the source, before cleaning, splitting and id assignment."""

    title: str
    text: str
    id: str | None = None


@dataclass(frozen=True)
class _Fields:
    text: str | None = None
    title: str | None = None
    id: str | None = None


# Bump when reading a source gives other passages (cleaning, splitting, ids): corpus_index.py then reads
# every source again instead of reusing the index it built from it.
READER_VERSION = 1
PASSAGE_WORDS = 150  # a longer text is split into passages of this many words, overlapping (read_corpus)


def load_corpus(source: str | Path, **options) -> list[Passage]:
    """Load `source` ("bundled", a file, a folder of .txt/.md, or a cached HF dataset name) as passages
    (`options`: read_corpus's)."""
    label, passages = read_corpus(source, **options)
    return list(non_empty(passages, label))


@dataclass
class ReadCount:
    """What reading a corpus did besides giving passages, counted as the passages are taken."""

    split_documents: int = 0  # texts longer than max_words, split into windows under ids of their own


def read_corpus(source: str | Path, *, text_field: str | None = None, title_field: str | None = None,
                id_field: str | None = None, split: str = "train",
                max_words: int = PASSAGE_WORDS, overlap_words: int = 30,
                count: ReadCount | None = None) -> tuple[str, Iterator[Passage]]:
    """The corpus's label and its passages as a stream: a JSONL file or a folder is read as the passages are
    taken, so a corpus of any size can be indexed without holding it (search/corpus_index.py). A missing
    source or bad options are refused here, before anything is read."""
    if not 0 <= overlap_words < max_words:
        raise CorpusError(f"overlap_words ({overlap_words}) must be >= 0 and < max_words ({max_words}); "
                          "lower the overlap or raise max_words")
    fields = _Fields(text_field, title_field, id_field)
    label, raws = _read_source(source, fields, split)
    return label, _to_passages(raws, max_words, overlap_words, count or ReadCount())


def non_empty(passages: Iterable[Passage], label: str) -> Iterator[Passage]:
    """`passages`, or a CorpusError once they turn out to be none."""
    empty = True
    for passage in passages:
        empty = False
        yield passage
    if empty:
        raise CorpusError(f"corpus {label} has no passages; point --corpus at a file with text")


def source_files(source: str | Path) -> list[Path] | None:
    """The files a local source is read from (one file, or a folder's text files in reading order); None for
    a Hugging Face dataset name or a path that does not exist."""
    path = BUNDLED_CORPUS if isinstance(source, str) and source == "bundled" else Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        return _folder_files(path)
    return None


# ---------------------------------------------------------------------------------------------- sources

def _read_source(source: str | Path, fields: _Fields, split: str) -> tuple[str, Iterable[_Raw]]:
    if isinstance(source, str) and source == "bundled":
        source = BUNDLED_CORPUS
    path = Path(source)
    if path.is_dir():
        return str(path), _read_folder(path)
    if path.is_file():
        return str(path), _records_to_raws(_read_records(path), fields, str(path))
    if isinstance(source, str) and _looks_like_hub_name(source):
        return source, _records_to_raws(_read_hub(source, split), fields, source)
    raise CorpusError(f"corpus path {path} does not exist; pass an existing .jsonl/.json/.parquet/.csv file, "
                      "a folder of .txt/.md files, or the name of a cached Hugging Face dataset")


def _looks_like_hub_name(source: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+(/[\w.-]+)?", source)) and not source.lower().endswith(RECORD_SUFFIXES)


def _read_records(path: Path) -> Iterable[dict] | dict:
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise CorpusError(f"corpus file {path} has unsupported extension '{suffix}'; use .jsonl, .json, "
                          ".parquet or .csv, or a folder of .txt/.md files")
    if path.stat().st_size == 0:
        return []
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    return _read_table(path, suffix)


def _read_jsonl(path: Path) -> Iterator[dict]:
    # Parsed with the stdlib, line by line, rather than with `datasets`: its JSON reader reports a
    # malformed file as a pyarrow error without the line number, and the user needs the line to fix it.
    try:
        yield from iter_jsonl(path, label="corpus file",
                              shape_fix='write one record {"title": ..., "text": ...} per line')
    except JsonlError as error:
        raise CorpusError(str(error)) from None


def _read_json(path: Path) -> list[dict] | dict:
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise CorpusError(f"corpus file {path}: {decoding_problem(raw, error)}; re-save the file as UTF-8") from None
    except json.JSONDecodeError as error:
        raise CorpusError(f"corpus file {path} is not valid JSON ({error.msg}: line {error.lineno} "
                          f"column {error.colno}); fix the file") from None
    if isinstance(data, dict) and _is_title_map(data):
        return data
    if isinstance(data, list) and all(isinstance(record, dict) for record in data):
        return data
    raise CorpusError(f"corpus file {path} is neither a JSON array of records nor a {{title: text}} object; "
                      "convert it to JSONL with one {\"title\": ..., \"text\": ...} record per line")


def _read_table(path: Path, suffix: str) -> list[dict]:
    from datasets import Dataset
    from datasets.exceptions import DatasetsError

    reader = Dataset.from_parquet if suffix == ".parquet" else Dataset.from_csv
    # A throwaway cache plus keep_in_memory: reading a local file leaves nothing under HF_HOME.
    with tempfile.TemporaryDirectory() as cache_dir, _quiet_datasets():
        try:
            return reader(str(path), cache_dir=cache_dir, keep_in_memory=True).to_list()
        except (ValueError, DatasetsError) as error:
            raise CorpusError(f"corpus file {path} could not be read as {suffix[1:]} ({error}); "
                              "check that the file is complete") from None


def _read_hub(name: str, split: str) -> list[dict]:
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    with _quiet_datasets():
        try:
            return datasets.load_dataset(name, split=split).to_list()
        except (ConnectionError, FileNotFoundError, DatasetNotFoundError) as error:
            raise CorpusError(f"corpus '{name}' is not a local path and not a cached Hugging Face dataset "
                              f"({error}); we run offline, so pass a local .jsonl/.json/.parquet/.csv file") from None
        except ValueError as error:  # e.g. Unknown split "dev". Should be one of ['train'].
            raise CorpusError(f"Hugging Face dataset '{name}' could not be loaded ({error}); "
                              "pick an existing split with --split") from None


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No "Generating train split" bars on stderr; the caller's own setting is restored afterwards."""
    import datasets

    was_disabled, verbosity = datasets.are_progress_bars_disabled(), datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its "Failed to read schema" line: we say it once
    try:
        yield
    finally:
        datasets.logging.set_verbosity(verbosity)
        if not was_disabled:
            datasets.enable_progress_bars()


def _folder_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)


def _read_folder(folder: Path) -> Iterator[_Raw]:
    for file in _folder_files(folder):
        text = _read_text(file)
        heading = re.search(r"^# +(.+)$", text, flags=re.MULTILINE)
        if heading:
            yield _Raw(heading.group(1), text[:heading.start()] + text[heading.end():])
        else:
            yield _Raw(file.stem, text)


def _read_text(file: Path) -> str:
    """A text file as UTF-8; one in another encoding (latin-1, cp1252) is read with replacement characters, and
    a note says so, since its passages then hold U+FFFD where the accents were."""
    raw = file.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        warnings.warn(f"{file}: {decoding_problem(raw, error)}; read with replacement characters: re-save it as "
                      "UTF-8 to keep its accents", stacklevel=2)
        return raw.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------- layouts

def _records_to_raws(records: Iterable[dict] | dict, fields: _Fields, label: str) -> Iterator[_Raw]:
    if isinstance(records, dict):
        yield from _from_title_map(records)
        return
    explicit = fields != _Fields()
    plain_fields = None
    for record in records:
        layout = None if explicit else _known_layout(record)
        if layout is not None:
            yield from layout
            continue
        plain_fields = plain_fields or _resolve_fields(record, fields, label)
        yield _from_plain(record, plain_fields)


def _known_layout(record: dict) -> list[_Raw] | None:
    """The paragraphs of a MuSiQue, HotpotQA or Search-R1 corpus record; None for any other record."""
    for layout in (_from_musique, _from_hotpot, _from_search_r1):
        raws = layout(record)
        if raws is not None:
            return raws
    return None


def _from_search_r1(record: dict) -> list[_Raw] | None:
    """Search-R1's corpora (wiki-18.jsonl): {"id", "contents": '"Title"\\ntext'}, the title quoted on the first
    line. Its own BM25 server splits them the same way (retrieval_server.py: split("\\n")[0].strip('"'))."""
    contents = record.get("contents")
    if not isinstance(contents, str) or "\n" not in contents or {"title", "text"} & record.keys():
        return None
    title, _, text = contents.partition("\n")
    given_id = record.get("id")
    return [_Raw(title.strip().strip('"'), text, None if given_id in (None, "") else str(given_id))]


def _is_title_map(data: dict) -> bool:
    return all(isinstance(value, str) or _is_str_list(value) for value in data.values())


def _from_title_map(data: dict) -> Iterator[_Raw]:
    for title, text in data.items():
        yield _Raw(title, _as_text(text))


def _from_musique(record: dict) -> list[_Raw] | None:
    paragraphs = record.get("paragraphs")
    if not isinstance(paragraphs, list) or not all(isinstance(p, dict) and "paragraph_text" in p
                                                   for p in paragraphs):
        return None
    return [_Raw(_as_text(p.get("title")), _as_text(p["paragraph_text"])) for p in paragraphs]


def _from_hotpot(record: dict) -> list[_Raw] | None:
    context = record.get("context")
    if isinstance(context, dict) and {"title", "sentences"} <= context.keys():  # the Hub's hotpot_qa layout
        context = list(zip(context["title"], context["sentences"]))
    if not isinstance(context, list) or not all(
            isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)
            for entry in context):
        return None
    return [_Raw(title, _as_text(sentences)) for title, sentences in context]


def _resolve_fields(record: dict, fields: _Fields, label: str) -> _Fields:
    available = ", ".join(record) or "none"
    for option, name in (("--text-field", fields.text), ("--title-field", fields.title), ("--id-field", fields.id)):
        if name is not None and name not in record:
            raise CorpusError(f"corpus {label} has no field '{name}' (given as {option}); "
                              f"available fields: {available}")
    text = fields.text or _first_present(record, TEXT_FIELDS)
    if text is None:
        raise CorpusError(f"corpus {label}: no text field found among the fields seen ({available}); "
                          "name it with --text-field")
    return _Fields(text, fields.title or _first_present(record, TITLE_FIELDS),
                   fields.id or _first_present(record, ID_FIELDS))


def _first_present(record: dict, candidates: Sequence[str]) -> str | None:
    return next((name for name in candidates if name in record), None)


def _from_plain(record: dict, fields: _Fields) -> _Raw:
    given_id = record.get(fields.id) if fields.id else None
    return _Raw(_as_text(record.get(fields.title)) if fields.title else "",
                _as_text(record.get(fields.text)),
                None if given_id in (None, "") else str(given_id))


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if _is_str_list(value):
        return " ".join(value)  # HotpotQA sentences; their own leading spaces vanish in _clean
    return str(value)


# ---------------------------------------------------------------------------------------------- passages

def _to_passages(raws: Iterable[_Raw], max_words: int, overlap_words: int, count: ReadCount) -> Iterator[Passage]:
    # Repeated passages are dropped by a 16-byte digest of their content, not the content itself, so a
    # streamed 21M-passage corpus does not hold its text here (_clean leaves no \x1f in a title or a chunk).
    seen_content: set[bytes] = set()
    used_ids: set[str] = set()
    for raw in raws:
        title, chunks = _clean(raw.title), _split_words(_clean(raw.text), max_words, overlap_words)
        count.split_documents += len(chunks) > 1
        for chunk in chunks:
            digest = hashlib.blake2b(f"{title}\x1f{chunk}".encode("utf-8"), digest_size=16).digest()
            if digest in seen_content:
                continue
            seen_content.add(digest)
            wanted = raw.id if raw.id is not None and len(chunks) == 1 else content_id(title, chunk)
            yield Passage(_unique(wanted, used_ids), title, chunk)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _split_words(text: str, max_words: int, overlap_words: int) -> list[str]:
    """Windows of at most max_words words, each overlapping the previous by overlap_words; [] for no text."""
    words = text.split()
    if len(words) <= max_words:
        return [text] if words else []
    step, chunks, start = max_words - overlap_words, [], 0
    while True:
        chunks.append(" ".join(words[start:start + max_words]))
        if start + max_words >= len(words):
            return chunks
        start += step


def _unique(wanted: str, used: set[str]) -> str:
    candidate, suffix = wanted, 1
    while candidate in used:
        suffix += 1
        candidate = f"{wanted}-{suffix}"
    used.add(candidate)
    return candidate
