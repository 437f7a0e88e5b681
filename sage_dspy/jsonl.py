"""The one JSONL reader: one JSON object per line, and every problem one line naming the file, the line and
what is wrong (invalid JSON, not an object, not UTF-8), with the fix the caller knows."""

import json
from collections.abc import Iterator
from pathlib import Path

from sage_dspy.errors import SageError

FIX_LINE = "fix or remove that line"


class JsonlError(SageError, ValueError):
    """A JSONL file with a line that is not a UTF-8 JSON object."""


def iter_jsonl(path: Path, *, label: str = "file", fix: str = FIX_LINE, shape_fix: str = "",
               whole_lines_only: bool = False) -> Iterator[dict]:
    """The objects of `path`, one per non-blank line, streamed. `label` names the file in errors ("corpus file");
    `fix` ends every error and `shape_fix` (when given) a line that is JSON but not an object.
    `whole_lines_only` leaves out a last line without its newline (a writer still appending, or killed)."""
    path = Path(path)
    with path.open("rb") as lines:  # bytes, decoded per line: a decoding error then knows its line
        for number, raw in enumerate(lines, start=1):
            if whole_lines_only and not raw.endswith(b"\n"):
                return
            if not raw.strip():
                continue
            yield _parse(raw, number, f"{label} {path}", fix, shape_fix or fix)


def read_jsonl(path: Path, **options) -> list[dict]:
    """Every object of `path` (see iter_jsonl)."""
    return list(iter_jsonl(path, **options))


def torn_tail(path: Path) -> int:
    """How many bytes follow the last newline of `path`: a torn last line left by a kill mid-write."""
    data = Path(path).read_bytes()
    return len(data) - (data.rfind(b"\n") + 1)


def _parse(raw: bytes, number: int, where: str, fix: str, shape_fix: str) -> dict:
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # a BOM on the first line is not data
    except UnicodeDecodeError as error:
        raise JsonlError(f"{where}: line {number} is not UTF-8 (byte 0x{raw[error.start]:02x} at column "
                         f"{error.start + 1}); re-save the file as UTF-8, or {fix}") from None
    try:
        record = json.loads(text.rstrip("\r\n"))  # a column past the newline would point at nothing
    except json.JSONDecodeError as error:
        raise JsonlError(f"{where}: line {number} is not valid JSON ({error.msg}: column {error.colno}); "
                         f"{fix}") from None
    if not isinstance(record, dict):
        raise JsonlError(f"{where}: line {number} is not a JSON object; {shape_fix}")
    return record


def decoding_problem(data: bytes, error: UnicodeDecodeError) -> str:
    """`error` as "line N is not UTF-8 (byte 0x.. at column C)", for whole files decoded at once (.json)."""
    line_start = data.rfind(b"\n", 0, error.start) + 1
    line = data.count(b"\n", 0, error.start) + 1
    return f"line {line} is not UTF-8 (byte 0x{data[error.start]:02x} at column {error.start - line_start + 1})"
