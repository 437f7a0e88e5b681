"""Passages on disk, read by offset: what lets a 5M-passage index open in well under a second.

An index folder keeps its passages in three plain files, written once by `PassageWriter`:

- `passages.jsonl`: one `{"id", "title", "text"}` record per line, in index row order (readable with any tool);
- `passages.offsets.npy`: int64 byte offsets, one per row plus the file's end (row i is bytes
  offsets[i]:offsets[i+1]);
- `passages.ids.npy` and `passages.id_rows.npy`: the ids as fixed-width UTF-8 bytes, sorted, and the row of
  each, for `position(id)` by binary search.

`PassageStore` memory-maps all of them, so opening costs nothing whatever the corpus size and a passage is
decoded only when it is read (a search's hits, a lookup by id). bm25s's own on-disk corpus
(`bm25s.utils.corpus.JsonlCorpus`) keeps its line offsets as a JSON list, parsed into a Python list at
load: about 0.5 s and 200 MB at 5M passages, and no lookup by id.
"""

import hashlib
import json
import mmap
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from sage_dspy.search.passages import Passage

TEXT_FILE = "passages.jsonl"
OFFSETS_FILE = "passages.offsets.npy"
IDS_FILE = "passages.ids.npy"
ID_ROWS_FILE = "passages.id_rows.npy"
STORE_FILES = (TEXT_FILE, OFFSETS_FILE, IDS_FILE, ID_ROWS_FILE)


class PassageWriter:
    """Append passages in row order, then `close()`: the store's files, the corpus fingerprint, the count.

    Holds one int64 offset and one id (as bytes) per passage, never a passage's text: about 16 bytes a
    passage plus the id, so 21M passages need under 500 MB here.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._file = open(self.directory / TEXT_FILE, "wb")
        self._offsets = array("q", [0])
        self._ids: list[np.ndarray] = []
        self._digest = hashlib.sha1()  # the same digest as passages.corpus_fingerprint, one passage at a time

    def add(self, passages: Sequence[Passage]) -> None:
        position = self._offsets[-1]
        lines = []
        for passage in passages:
            line = json.dumps({"id": passage.id, "title": passage.title, "text": passage.text},
                              ensure_ascii=False).encode("utf-8") + b"\n"
            lines.append(line)
            position += len(line)
            self._offsets.append(position)
            self._digest.update("\x1f".join((passage.id, passage.title, passage.text)).encode("utf-8") + b"\x1e")
        self._file.write(b"".join(lines))
        if passages:
            self._ids.append(np.array([p.id.encode("utf-8") for p in passages], dtype=np.bytes_))

    def close(self) -> tuple[str, int]:
        """Write the offsets and the sorted ids; the corpus fingerprint and the number of passages."""
        self._file.close()
        np.save(self.directory / OFFSETS_FILE, np.frombuffer(self._offsets, dtype=np.int64))
        ids = np.concatenate(self._ids) if self._ids else np.array([], dtype="S1")
        rows = np.argsort(ids, kind="stable")
        ids = ids[rows]
        if len(ids) > 1 and bool((ids[1:] == ids[:-1]).any()):
            repeated = ids[1:][ids[1:] == ids[:-1]][0].decode("utf-8")
            raise ValueError(f"passage ids must be unique ({repeated!r} repeats); load passages with "
                             "sage_dspy.search.corpus.load_corpus")
        np.save(self.directory / IDS_FILE, ids)
        np.save(self.directory / ID_ROWS_FILE, rows.astype(np.int64))
        return self._digest.hexdigest()[:16], len(self._offsets) - 1


def write_passages(passages: Iterable[Passage], directory: Path) -> tuple[str, int]:
    writer = PassageWriter(directory)
    writer.add(list(passages))
    return writer.close()


def has_store(directory: Path) -> bool:
    return all((Path(directory) / name).is_file() for name in STORE_FILES)


class PassageStore(Sequence):
    """The passages of an index folder, memory-mapped: `store[row]`, `len(store)`, `store.position(id)`.

    Read-only and safe to share between threads (slicing a mmap never moves a file position).
    """

    def __init__(self, directory: Path, fingerprint: str | None = None):
        directory = Path(directory)
        self.directory = directory
        self.fingerprint = fingerprint  # their corpus_fingerprint, when the index's metadata gives it
        self._offsets = np.load(directory / OFFSETS_FILE, mmap_mode="r")
        self._ids = np.load(directory / IDS_FILE, mmap_mode="r")
        self._id_rows = np.load(directory / ID_ROWS_FILE, mmap_mode="r")
        with open(directory / TEXT_FILE, "rb") as file:
            self._text = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if len(self) else b""

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"passage row {row} out of range (the store has {len(self)})")
        record = json.loads(self._text[int(self._offsets[row]):int(self._offsets[row + 1])])
        return Passage(record["id"], record["title"], record["text"])

    def position(self, passage_id: str) -> int:
        """The row of the passage with this id; KeyError when none has it."""
        key = passage_id.encode("utf-8")
        if len(self._ids) == 0 or len(key) > self._ids.dtype.itemsize:
            raise KeyError(passage_id)
        found = int(np.searchsorted(self._ids, key))
        if found < len(self._ids) and self._ids[found] == key:
            return int(self._id_rows[found])
        raise KeyError(passage_id)
