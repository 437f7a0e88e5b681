"""Where a command may write: one rule, checked by every command before any work.

A command writes only into a folder that is new, empty, or that sage marked as its own output of the same kind,
never inside another output of sage's, and never over a file it did not write. Inside another kind's folder,
what it wrote would be lost with that folder: an index rebuild removes `indexes/<fingerprint>/` whole, and a
re-export swaps out the export folder. A folder is marked `.sage-output.json` ({"kind": ...}) first, before
anything else goes into it. Folders from before the marker are known by the files only sage writes there
together (`LEGACY_SHAPES`: a run is config.json holding a run's settings plus records.jsonl, so a user's own
config.json is no run). An index and a compiled program are known by their own files only: an index by the
metadata file it always had, a program by program.json beside config.json (compile always makes a new folder,
and the folder is logged to MLflow as it is).
"""

import contextlib
import errno
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from sage_dspy.errors import SageError

MARKER = ".sage-output.json"
RUN, EXPORT, REPORT, SOLVE, INDEX, PROGRAM = ("run", "export", "evaluation report", "solve output", "search index",
                                              "compiled program")
LOCK_FILE = ".lock"  # a run's flock file (runs/folder.py); alone, it leaves a folder empty
# What each kind wrote before the marker existed (all must be files), and what its settings file must hold.
LEGACY_SHAPES = {RUN: ("config.json", "records.jsonl"), EXPORT: ("export.json",), SOLVE: ("answers.jsonl",
                 "summary.json"), REPORT: ("report.md", "report.html"), PROGRAM: ("program.json", "config.json"),
                 INDEX: ("sage_index.json",)}
# Generic file names count only with what sage writes in them, so a user's own config.json, export.json or
# store.json (anywhere above an --out too) is not taken for a sage output.
REQUIRED_KEYS = {RUN: ("config.json", ("corpus", "recipe", "k")),  # every run's settings (runs/config.py)
                 EXPORT: ("export.json", ("runs", "formats", "splits"))}  # the manifest (dataset/export.py)
PASSAGE_STORE, STORE_KEYS = "store.json", ("fingerprint", "passages")  # passages without an index (corpus_index)


class OutputError(SageError, ValueError):
    """An --out that cannot take this command's output: a file, read-only, someone else's, or full."""


def kind_of(folder: Path) -> str | None:
    """The kind of sage output `folder` is, or None (not a folder, or not ours)."""
    folder = Path(folder)
    marker = folder / MARKER
    if marker.is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            return json.loads(marker.read_text(encoding="utf-8")).get("kind")
    for kind, files in LEGACY_SHAPES.items():
        if all((folder / name).is_file() for name in files) and (
                kind not in REQUIRED_KEYS or _holds_keys(folder / REQUIRED_KEYS[kind][0], REQUIRED_KEYS[kind][1])):
            return kind
    if _holds_keys(folder / PASSAGE_STORE, STORE_KEYS):
        return INDEX
    return None


def _holds_keys(path: Path, keys: tuple[str, ...]) -> bool:
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # missing or unreadable: no sign it is ours (a marked run with a spoiled config says so on resume)
    return isinstance(settings, dict) and all(key in settings for key in keys)


def mark(folder: Path, kind: str) -> None:
    """Make `folder` (and its parents) and mark it as this kind's output, unless it is marked already."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / MARKER).is_file():
        with disk_full_as_one_line(folder / MARKER, "nothing was written"):
            (folder / MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")


def check_output_folder(folder: Path, kind: str, *, option: str = "--out", empty_enough=()) -> None:
    """Refuse, before any work and touching nothing, a folder that cannot take `kind`'s output: a file, under
    a file, read-only, inside another output of sage's, or holding files that are not this kind's output.
    `empty_enough`: names that do not make a folder someone else's (a killed run's empty records file)."""
    folder = Path(folder)
    existing = _check_writable(folder, option, what="a folder")
    _check_not_inside_an_output(folder, option)
    if existing != folder or not any(entry.name not in (LOCK_FILE, *empty_enough) for entry in folder.iterdir()):
        return
    found = kind_of(folder)
    if found is None:
        raise OutputError(f"{option} {folder} holds files that are not a sage {kind}; nothing was touched: pass an "
                          "empty or new folder")
    if found != kind:
        raise OutputError(f"{option} {folder} holds a sage {found}, not {_a(kind)}; nothing was touched: pass "
                          "another folder")


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def check_output_file(path: Path, is_ours, *, what: str, option: str = "--out", inputs: Iterable[Path] = ()) -> None:
    """Refuse, before any work, a file path that cannot take `what`: a folder, under a file, read-only, inside
    an output folder of sage's, one of the command's `inputs`, or an existing file `is_ours(path)` denies."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; pass a file path for the {what}, such as "
                          f"{path / 'report.json'}")
    _check_writable(path.parent, option, what="a file", named=path)
    _check_not_inside_an_output(path, option)
    if any(_same_file(path, source) for source in inputs):
        raise OutputError(f"{option} {path} is one of this command's inputs; pass a new file for the {what}")
    if path.exists() and not is_ours(path):
        raise OutputError(f"{option} {path} exists and is not {_a(what)} sage wrote; nothing was touched: pass a new "
                          "file")


def _check_writable(folder: Path, option: str, *, what: str, named: Path | None = None) -> Path:
    """The nearest existing folder of `folder` (itself, or a parent), which must be a folder we can write."""
    named = named or folder
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        where = "is a file" if existing == named else f"is under the file {existing}"
        raise OutputError(f"{option} {named} {where}; pass {what} path that is new or sage's own output")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {named} cannot be written ({existing} is read-only); pass a path you can "
                          "write to")
    return existing


def _check_not_inside_an_output(path: Path, option: str) -> None:
    """No output inside another: the enclosing output's owner would replace or remove it with its folder."""
    for parent in Path(os.path.abspath(path)).parents:
        found = kind_of(parent) if parent.is_dir() else None
        if found:
            raise OutputError(f"{option} {path} is inside the sage {found} folder {parent}; outputs never nest (an "
                              "index rebuild or a re-export replaces its folder whole): pass a path outside it")


def foreign_entries(folder: Path, ours: Iterable[str]) -> list[str]:
    """The entries of `folder` its kind never writes: what replacing the folder whole would lose."""
    allowed = {*ours, MARKER}
    return sorted(entry.name for entry in Path(folder).iterdir() if entry.name not in allowed)


def _same_file(path: Path, source: Path) -> bool:
    try:
        return Path(source).exists() and path.exists() and os.path.samefile(path, source)
    except OSError:
        return False


@contextlib.contextmanager
def disk_full_as_one_line(path: Path, kept: str) -> Iterator[None]:
    """ENOSPC while writing `path` becomes one line saying what was `kept` and to free space and re-run."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise OutputError(f"no space left on the device while writing {path}; {kept}: free some space, then "
                          "re-run the same command") from None
