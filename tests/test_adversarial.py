"""The standing adversarial suite: every bad input we know of, across the CLI, is one line on stderr, exit 2,
no traceback, and nothing produced before is lost (a finished run folder stays the same, byte for byte).

Each case is a function of a `Bench` (a working folder with a good corpus and a finished run) that makes the
bad input and returns the arguments, the text the one line must hold, and the folders it must leave alone.
Add a case here for every bad input found; the outcomes that are not bad input (Ctrl-C, every seed failed,
notes) are tested below the table.
"""

import errno
import fcntl
import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from sage_dspy.runs import folder as run_folder
from tests.cli_helpers import assert_one_line_error, invoke

GENERATE = ("generate", "--no-track", "--seeds", "2", "--targets", "2-3", "--k", "2", "--rounds", "1")
LATIN1 = "Café Zürich, the façade".encode("latin-1")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_corpus_source):
    """One finished run of GENERATE over the tiny corpus, copied by the cases that need one."""
    root = tmp_path_factory.mktemp("finished")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = invoke(*GENERATE, "--corpus", tiny_corpus_source, "--out", root / "run")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.fixture(scope="module")
def tiny_corpus_source(tmp_path_factory):
    from tests.conftest import TINY_PASSAGES

    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n"
                            for p in TINY_PASSAGES), encoding="utf-8")
    return path


@dataclass
class Bench:
    work: Path
    corpus: Path
    finished: Path
    monkeypatch: pytest.MonkeyPatch

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return path

    def run_copy(self, name: str = "run") -> Path:
        """A copy of the finished run, to resume or to spoil."""
        return Path(shutil.copytree(self.finished, self.work / name))

    def generate(self, *args, out: Path | None = None, corpus: Path | None = None) -> list:
        return [*GENERATE, "--corpus", corpus or self.corpus, "--out", out or self.work / "new-run", *args]

    def program(self, content: str) -> Path:
        folder = self.work / "program"
        folder.mkdir()
        (folder / "program.json").write_text(content)
        (folder / "config.json").write_text(json.dumps({"recipe": "sage"}))
        return folder


def spoil_line(run: Path, line: int, text: bytes) -> Path:
    records = run / "records.jsonl"
    lines = records.read_bytes().splitlines(keepends=True)
    lines[line - 1] = text + b"\n"
    records.write_bytes(b"".join(lines))
    return run


def spoil(run: Path, name: str, text: str | None) -> Path:
    """`run` with its file `name` overwritten by `text`, or deleted for None."""
    if text is None:
        (run / name).unlink()
    else:
        (run / name).write_text(text)
    return run


def with_a_kept_pair(run: Path) -> Path:
    """The offline LM keeps no pair of the tiny corpus: mark one kept, as a run that kept one would have it."""
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    records[0].update(kept=True, drop_reason="", question=records[0]["question"] or "Who designed Harbor Bridge?")
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def without_a_demonstration(run: Path) -> Path:
    """A kept pair none of whose attempts is correct: the SFT formats have no chat to show for it (issue 24)."""
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    for attempt in (attempt for past in records[0]["rounds"] for attempt in past["attempts"]):
        attempt["correct"] = False
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def held_lock(bench: Bench, run: Path):
    """Another process's lock on `run`, as the kernel sees it: this test's own open file description."""
    handle = (run / run_folder.LOCK_FILE).open("a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.seek(0)
    handle.truncate()
    handle.write("4242\n")
    handle.flush()
    bench.monkeypatch.setattr(bench, "lock", handle, raising=False)  # kept open for the test's length
    return run


def read_only(bench: Bench, folder: Path) -> Path:
    """Root ignores permission bits, so the check (os.access) is what is made to see a read-only folder."""
    folder.mkdir()
    real = os.access
    bench.monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder else real(p, mode, **kw))
    return folder / "run"


def with_toml(bench: Bench, text: str) -> list:
    return bench.generate("--config", bench.file("sage.toml", text))


def finished_and(bench: Bench, make) -> tuple:
    run = bench.run_copy()
    return make(run), run


def taken_port(bench: Bench) -> int:
    """A port another server listens on, on 127.0.0.1, for the test's length."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    bench.monkeypatch.setattr(bench, "server", server, raising=False)  # kept open for the test's length
    return server.getsockname()[1]


# Each case: bench -> (arguments, text the line must hold, folders that must stay byte for byte the same).
CASES = {
    # --- the corpus, of each kind
    "missing corpus": lambda b: (b.generate(corpus=b.work / "nope.jsonl"), "does not exist", ()),
    "empty corpus": lambda b: (b.generate(corpus=b.file("empty.jsonl", "")), "no passages", ()),
    "corpus jsonl bad line": lambda b: (b.generate(corpus=b.file("c.jsonl", '{"text": "a"}\n{"text": \n')),
                                        "line 2 is not valid JSON", ()),
    "corpus jsonl not objects": lambda b: (b.generate(corpus=b.file("c.jsonl", "[1, 2]\n")),
                                           "line 1 is not a JSON object", ()),
    "corpus jsonl not UTF-8": lambda b: (b.generate(corpus=b.file("c.jsonl", b'{"text": "ok"}\n{"text": "' +
                                                                  LATIN1 + b'"}\n')),
                                         "line 2 is not UTF-8 (byte 0xe9", ()),
    "corpus json not UTF-8": lambda b: (b.generate(corpus=b.file("c.json", b'[\n{"text": "' + LATIN1 + b'"}]')),
                                        "line 2 is not UTF-8", ()),
    "corpus json invalid": lambda b: (b.generate(corpus=b.file("c.json", '[{"text": "a"},')), "is not valid JSON", ()),
    "corpus json wrong shape": lambda b: (b.generate(corpus=b.file("c.json", "42")), "neither a JSON array", ()),
    "corpus parquet garbage": lambda b: (b.generate(corpus=b.file("c.parquet", "not parquet")),
                                         "could not be read as parquet", ()),
    "corpus unsupported suffix": lambda b: (b.generate(corpus=b.file("c.xml", "<a/>")), "unsupported extension", ()),
    "corpus unknown text field": lambda b: (b.generate("--text-field", "body2"), "no field 'body2'", ()),
    "corpus no text field": lambda b: (b.generate(corpus=b.file("c.jsonl", '{"q": "a"}\n')), "no text field", ()),
    # --- options
    "unknown recipe": lambda b: (b.generate("--recipe", "magic"), "unknown program recipe 'magic'", ()),
    "unknown lm": lambda b: (b.generate("--lm", "gpt4"), "unknown LM 'gpt4'", ()),
    "unknown role lm": lambda b: (b.generate("--judge-lm", "nonsense"), "unknown LM 'nonsense'", ()),
    "targets zero": lambda b: (b.generate("--targets", "0-3"), "target range '0-3'", ()),
    "targets reversed": lambda b: (b.generate("--targets", "5-2"), "target range '5-2'", ()),
    "targets above ten": lambda b: (b.generate("--targets", "3-11"), "target range '3-11'", ()),
    "targets not numbers": lambda b: (b.generate("--targets", "two"), "target range 'two'", ()),
    "unknown protocol": lambda b: (b.generate("--protocol", "fast"), "unknown protocol 'fast'", ()),
    "cost budget without prices": lambda b: (b.generate("--lm", "openai/my-model", "--max-cost", "1"),
                                             "no price is known", ()),
    # --- the config file and the environment
    "config missing": lambda b: (b.generate("--config", b.work / "nope.toml"), "nope.toml does not exist", ()),
    "config is a directory": lambda b: (b.generate("--config", b.work), "is a directory", ()),
    "config bad toml": lambda b: (with_toml(b, "[lm\nmodel = 1\n"), "sage.toml", ()),
    "config unknown key": lambda b: (with_toml(b, "[lm.judge]\ntemp = 0\n"), "unknown key 'temp'", ()),
    "config holds a key": lambda b: (with_toml(b, '[lm]\napi_key = "sk-x"\n'), "keys come from the environment", ()),
    "environment not a number": lambda b: (b.monkeypatch.setenv("SAGE_MAX_TOKENS", "x") or b.generate(),
                                           "SAGE_MAX_TOKENS='x'", ()),
    # --- --program
    "program missing": lambda b: (b.generate("--program", b.work / "no-program"), "program.json", ()),
    "program truncated": lambda b: (b.generate("--program", b.program('{"generator.propose": {"demos": [')),
                                    "is not valid JSON", ()),
    "program wrong shape": lambda b: (b.generate("--program", b.program('{"generator.propose": 5}')),
                                      "not a compiled program's state", ()),
    # --- --out
    "out is a file": lambda b: (b.generate(out=b.file("taken.txt", "mine")), "is a file", ()),
    "out under a file": lambda b: (b.generate(out=b.file("taken.txt", "mine") / "run"), "is under the file", ()),
    "out read-only": lambda b: (b.generate(out=read_only(b, b.work / "locked")), "cannot be written", ()),
    "out holds user records": lambda b: (b.generate(out=b.file("mine/records.jsonl", '{"mine": 1}\n').parent),
                                         "not a sage run", (b.work / "mine",)),
    "out holds user files": lambda b: (b.generate(out=b.file("mine/notes.md", "# notes").parent), "not a sage run",
                                       (b.work / "mine",)),
    "out written by another process": lambda b: (b.generate(out=held_lock(b, run := b.run_copy())),
                                                 "another sage process (pid 4242)", (run,)),
    "out in use, --fresh": lambda b: (b.generate("--fresh", out=held_lock(b, run := b.run_copy())),
                                      "pid 4242", (run,)),
    # --- resuming a run
    "resume other settings": lambda b: (b.generate("--k", "3", out=(run := b.run_copy())), "other settings", (run,)),
    "resume corrupt records": lambda b: (b.generate(out=spoil_line(run := b.run_copy(), 1, b'{"seed_id": ')),
                                         "line 1 is not valid JSON", (run,)),
    "resume records not UTF-8": lambda b: (b.generate(out=spoil_line(run := b.run_copy(), 2, LATIN1)),
                                           "line 2 is not UTF-8", (run,)),
    "resume records not seeds": lambda b: (b.generate(out=spoil_line(run := b.run_copy(), 2, b'{"x": 1}')),
                                           "line 2 is not a seed's record", (run,)),
    "resume corrupt config": lambda b: (b.generate(out=spoil(run := b.run_copy(), "config.json", '{"seeds": ')),
                                        "config.json is corrupt", (run,)),
    # --- other commands
    "solve questions missing": lambda b: (["solve", "--questions", b.work / "q.jsonl"], "does not exist", ()),
    "solve questions not objects": lambda b: (["solve", "--questions", b.file("q.jsonl", '"why?"\n')],
                                              "line 1 is not a JSON object", ()),
    "solve questions not UTF-8": lambda b: (["solve", "--questions", b.file("q.jsonl", LATIN1 + b"\n")],
                                            "line 1 is not UTF-8", ()),
    "solve question without answer": lambda b: (["solve", "--questions", b.file("q.jsonl", '{"question": "Q?"}\n')],
                                                "needs 'question' and 'answer'", ()),
    "evaluate unknown recipe": lambda b: (["evaluate", "--no-track", "--recipes", "sage,magic", "--corpus", b.corpus],
                                          "'magic'", ()),
    "compile unknown optimizer": lambda b: (["compile", "--no-track", "--optimizer", "magic"], "'magic'", ()),
    "export no records": lambda b: (["export", b.work, "--out", b.work / "x"], "holds no records.jsonl", ()),
    "export run in progress": lambda b: (["export", spoil(run := b.run_copy(), "summary.json", None), "--out",
                                          b.work / "x"], "still in progress", (run,)),
    "export records not UTF-8": lambda b: (["export", spoil_line(run := b.run_copy(), 1, LATIN1), "--out",
                                            b.work / "x"], "line 1 is not UTF-8", (run,)),
    "export unknown format": lambda b: (["export", b.finished, "--out", b.work / "x", "--format", "alpaca"],
                                        "alpaca", (b.finished,)),
    "export splits not summing": lambda b: (["export", b.finished, "--out", b.work / "x", "--splits",
                                             "train=0.8,test=0.1"], "not 1", (b.finished,)),
    "decontaminate no benchmark": lambda b: (["decontaminate", b.finished], "no benchmark given", (b.finished,)),
    "decontaminate missing benchmark": lambda b: (["decontaminate", with_a_kept_pair(run := b.run_copy()), "-b",
                                                   b.work / "nope.jsonl"], "does not exist", (run,)),
    "decontaminate benchmark bad line": lambda b: (["decontaminate", with_a_kept_pair(run := b.run_copy()), "-b",
                                                    b.file("b.jsonl", '{"question": "Q?"}\n{"question": \n')],
                                                   "line 2 is not valid JSON", (run,)),
    # --- #22 items 7, 8, 10: Click's own checks as one line, the same limits everywhere, bounded --ray
    "option below its range": lambda b: (b.generate("--seeds", "0"), "invalid value for '--seeds'", ()),
    "attempts zero": lambda b: (b.generate("--k", "0"), "invalid value for '--k'", ()),
    "cost budget not a number": lambda b: (b.generate("--max-cost", "nan"), "invalid value for '--max-cost'", ()),
    "option not a number": lambda b: (b.generate("--seeds", "many"), "invalid value for '--seeds'", ()),
    "unknown option": lambda b: (b.generate("--sedes", "3"), "no such option: --sedes", ()),
    "unknown command": lambda b: (["generat"], "no such command 'generat'", ()),
    "lm timeout infinite": lambda b: (b.generate("--lm-timeout", "inf"), "--lm-timeout must be a number", ()),
    "program prompt not text": lambda b: (b.generate("--program", b.program(
        '{"generator.propose.react": {"signature": {"instructions": 5, "fields": []}, "demos": []}}')),
        "instructions that are not text", ()),
    "program demos not a list": lambda b: (b.generate("--program", b.program(
        '{"generator.propose.react": {"signature": {"instructions": "Ask.", "fields": []}, "demos": 3}}')),
        "demos that are not a list", ()),
    "corpus without titles, offline LM": lambda b: (b.generate(corpus=b.file("c.jsonl", "".join(
        json.dumps({"text": f"Passage {n} names Harbor Bridge and Ada Lin."}) + "\n" for n in range(5)))),
        "pass --title-field NAME", ()),
    "ray address with nothing listening": lambda b: (no_ray(b) or b.generate("--ray", f"127.0.0.1:{closed_port()}"),
                                                     "nothing answers at 127.0.0.1", ()),
    # --- issue 24: training sets that train
    "export split would be empty": lambda b: (["export", with_a_kept_pair(run := b.run_copy()), "--out",
                                               b.work / "x", "--splits", "train=0.5,test=0.5"],
                                              "split 'test' would get 0 pairs", (run,)),
    "export min per split zero": lambda b: (["export", with_a_kept_pair(run := b.run_copy()), "--out", b.work / "x",
                                             "--min-per-split", "0"], "would allow empty splits", (run,)),
    # the pair has no correct attempt to show: an empty OpenAI training file would fail its check
    "export sft split would be empty": lambda b: (["export", without_a_demonstration(with_a_kept_pair(
                                                       run := b.run_copy())), "--out",
                                                   b.work / "x", "--splits", "train=1", "--format",
                                                   "search-r1,sft-openai"],
                                                  "split 'train' would get 0 sft-openai rows", (run,)),
    # --- issue 22 item 10 (branch identity): the retriever's URL and serve-index's caps
    "retriever with credentials": lambda b: (b.generate("--retriever", "http://alice:s3cret@127.0.0.1:9/retrieve"),
                                             "--retriever carries credentials", ()),
    "retriever with credentials, solve": lambda b: (["solve", "--questions", b.file("q.jsonl", '{"question": "Q?", '
                                                    '"answer": "A"}\n'), "--retriever",
                                                    "http://alice:s3cret@127.0.0.1:9/retrieve"],
                                                   "--retriever carries credentials", ()),
    "serve-index topk above its cap": lambda b: (["serve-index", "--corpus", b.corpus, "--topk", "5", "--max-topk",
                                                  "3"], "--topk 5 is above --max-topk 3", ()),
    # --- issue 23 (models): sage check's LM settings
    "check unknown lm": lambda b: (["check", "--lm", "gpt4"], "unknown LM 'gpt4'", ()),
    "check judge lm unknown": lambda b: (["check", "--judge-lm", "gpt4"], "unknown LM 'gpt4'", ()),
    "check config is a folder": lambda b: (["check", "--config", b.work], "is a directory", ()),
    # --- issue 21 (faults): a dead retriever is refused before any LM call; the breaker's settings
    "retriever closed port": lambda b: (b.generate("--retriever", dead_retriever()),
                                        "the retriever at http://127.0.0.1", ()),
    "evaluate retriever closed port": lambda b: (["evaluate", "--no-track", "--seeds", "2", "--corpus", b.corpus,
                                                  "--retriever", dead_retriever()], "did not answer", ()),
    "solve retriever closed port": lambda b: (["solve", "--questions", b.file("q.jsonl", '{"question": "Q?", '
                                               '"answer": "A"}\n'), "--corpus", b.corpus, "--retriever",
                                               dead_retriever()], "did not answer", ()),
    "compile retriever closed port": lambda b: (["compile", "--no-track", "--corpus", b.corpus, "--train-size", "2",
                                                 "--val-size", "1", "--retriever", dead_retriever()],
                                                "did not answer", ()),
    "config breaker rate above 1": lambda b: (with_toml(b, "[breaker]\nrate = 2\n"), "[breaker] rate", ()),
    "config breaker unknown key": lambda b: (with_toml(b, "[breaker]\nafter = 3\n"), "unknown key 'after'", ()),
    "environment breaker not a number": lambda b: (b.monkeypatch.setenv("SAGE_BREAKER_IN_A_ROW", "five") or
                                                   b.generate(), "SAGE_BREAKER_IN_A_ROW='five'", ()),
    # --- #22: a command writes only into a new or empty folder or its own kind of output, never inside another
    # output, never over a file it did not write (sage_dspy/outputs.py); and more bad input, one line each
    "decontaminate out is the run's records": lambda b: (decontaminate(b, run := kept_run(b), run / "records.jsonl"),
                                                         "is inside the sage run folder", (run,)),
    "decontaminate out is the benchmark": lambda b: (decontaminate(b, run := kept_run(b), b.work / "bench/b.json"),
                                                     "is one of this command's inputs", (run, b.work / "bench")),
    "decontaminate out is a user's file": lambda b: (decontaminate(b, run := kept_run(b), b.file("mine/n.json", "{}")),
                                                     "is not a contamination report sage wrote",
                                                     (run, b.work / "mine")),
    "decontaminate out is a folder": lambda b: (decontaminate(b, run := kept_run(b), b.file("mine/n.md", "").parent),
                                                "is a folder; pass a file path", (run, b.work / "mine")),
    "decontaminate out under a file": lambda b: (decontaminate(b, kept_run(b), b.file("taken.txt", "x") / "r.json"),
                                                 "is under the file", ()),
    "decontaminate out read-only": lambda b: (decontaminate(b, kept_run(b), read_only(b, b.work / "locked")),
                                              "cannot be written", ()),
    "export around a user's run": lambda b: (["export", user_run_inside_an_export(b), "--out", b.work / "exp"],
                                             "files export did not write (myrun)", (b.work / "exp",)),
    "export into a run": lambda b: (["export", b.finished, "--out", run := b.run_copy()], "holds a sage run, not an "
                                    "export", (run,)),
    "export out is a file": lambda b: (["export", b.finished, "--out", b.file("taken.txt", "x")], "is a file", ()),
    "export out under a file": lambda b: (["export", b.finished, "--out", b.file("taken.txt", "x") / "e"],
                                          "is under the file", ()),
    "export out read-only": lambda b: (["export", b.finished, "--out", read_only(b, b.work / "locked")],
                                       "cannot be written", ()),
    "export on a full disk": lambda b: (["export", b.work / "kept", "--out", earlier_export(b, disk_full=True),
                                         "--splits", "train=1"],
                                        "no space left on the device", (b.work,)),
    "generate inside an index": lambda b: (b.generate(out=(index := real_index(b)) / "myrun"),
                                           "is inside the sage search index folder", (index,)),
    "export inside an index": lambda b: (["export", b.finished, "--out", (index := real_index(b)) / "exp"],
                                         "is inside the sage search index folder", (index,)),
    "generate inside an export": lambda b: (b.generate(out=earlier_export(b) / "myrun"),
                                            "is inside the sage export folder", (b.work / "exp",)),
    "out holds the user's config.json": lambda b: (b.generate(out=b.file("mine/config.json", '{"model": "x"}').parent),
                                                   "not a sage run", (b.work / "mine",)),
    "out holds user config and records": lambda b: (b.generate(out=users_config_and_records(b)), "not a sage run",
                                                    (b.work / "mine",)),
    "resume with a user's seed line": lambda b: (b.generate(out=with_a_foreign_seed(run := b.run_copy())),
                                                 "line 3 (seed 'mine-1') is not one of this run's seeds", (run,)),
    "index build on a full disk": lambda b: (b.generate(corpus=disk_full_in_index_build(b)),
                                             "no space left on the device", (b.work,)),
    "corpus only stopwords": lambda b: (b.generate(corpus=b.file("c.jsonl", '{"title": "The", "text": "it is the"}\n'
                                                                           '{"title": "Of", "text": "and of a"}\n')),
                                        "has a searchable word", ()),
    "corpus parquet magic, garbage inside": lambda b: (b.generate(corpus=b.file("c.parquet", b"PAR1" + b"x" * 64 +
                                                                                 b"PAR1")),
                                                       "could not be read as parquet", ()),
    "resume records is a folder": lambda b: (b.generate(out=records_as_a_folder(run := b.run_copy())),
                                             "records.jsonl is not a file", (run,)),
    "export records is a folder": lambda b: (["export", records_as_a_folder(run := b.run_copy()), "--out",
                                              b.work / "x"], "records.jsonl is not a file", (run,)),
    "resume rounds a string": lambda b: (b.generate(out=with_field(run := b.run_copy(), "rounds", "three")),
                                         "line 1 has rounds of type str, not a list", (run,)),
    "export rounds a string": lambda b: (["export", with_field(run := b.run_copy(), "rounds", "three"), "--out",
                                          b.work / "x"], "line 1 has rounds of type str, not a list", (run,)),
    "resume supporting_ids a number": lambda b: (b.generate(out=with_field(run := b.run_copy(), "supporting_ids", 7)),
                                                 "line 1 has supporting_ids of type int", (run,)),
    "export supporting_ids a number": lambda b: (["export", with_field(run := b.run_copy(), "supporting_ids", 7),
                                                  "--out", b.work / "x"], "line 1 has supporting_ids of type int",
                                                 (run,)),
    "solve out is a file": lambda b: (solve(b, b.file("taken.txt", "x")), "is a file", ()),
    "solve out under a file": lambda b: (solve(b, b.file("taken.txt", "x") / "s"), "is under the file", ()),
    "solve out read-only": lambda b: (solve(b, read_only(b, b.work / "locked")), "cannot be written", ()),
    "solve out is a run": lambda b: (solve(b, run := b.run_copy()), "holds a sage run, not a solve output", (run,)),
    "evaluate out is a file": lambda b: (evaluate(b, b.file("taken.txt", "x")), "is a file", ()),
    "evaluate out under a file": lambda b: (evaluate(b, b.file("taken.txt", "x") / "e"), "is under the file", ()),
    "evaluate out read-only": lambda b: (evaluate(b, read_only(b, b.work / "locked")), "cannot be written", ()),
    "evaluate out holds user files": lambda b: (evaluate(b, b.file("mine/notes.md", "# notes").parent),
                                                "not a sage evaluation report", (b.work / "mine",)),
    # --- issue #23: --adapter, by option, environment and file, on each command that builds LMs
    "unknown adapter": lambda b: (b.generate("--adapter", "xml"), "unknown adapter 'xml': choose one of chat", ()),
    "unknown adapter in the environment": lambda b: (b.monkeypatch.setenv("SAGE_JUDGE_ADAPTER", "tools")
                                                     or b.generate(), "SAGE_JUDGE_ADAPTER must be one of", ()),
    "unknown adapter in the config": lambda b: (with_toml(b, '[lm]\nadapter = "yaml"\n'),
                                                "[lm] adapter must be one of chat, json, json-schema", ()),
    "solve unknown adapter": lambda b: (["solve", "--questions", b.file("q.jsonl", '{"question": "Q?", '
                                         '"answer": "A"}\n'), "--adapter", "JSON"], "unknown adapter 'JSON'", ()),
    # --- issues #21 item 5 (the run's spend ledger, spoiled), #22 item 8 and #25 item 7 (`sage ui` on a taken port)
    "resume corrupt spend ledger": lambda b: (b.generate(out=spoil(run := b.run_copy(), "spend.jsonl",
                                                                   '{"seed": \n')), "spend ledger", (run,)),
    "resume spend ledger not calls": lambda b: (b.generate(out=spoil(run := b.run_copy(), "spend.jsonl",
                                                                     '{"x": 1}\n')),
                                                "neither a paid call nor a settled seed", (run,)),
    "ui port taken": lambda b: (["ui", "--port", taken_port(b)], "is already in use", ()),
    # --- issue #25: evaluate --programs
    "evaluate one program": lambda b: (["evaluate", "--no-track", "--programs", "baseline", "--corpus", b.corpus],
                                       "a comparison needs two or more", ()),
    "evaluate one program twice": lambda b: (["evaluate", "--no-track", "--programs", "baseline, baseline",
                                              "--corpus", b.corpus], "names 1 distinct program", ()),
    "evaluate programs under two recipes": lambda b: (["evaluate", "--no-track", "--programs", "baseline,x",
                                                       "--recipes", "sage,resample"], "under one recipe", ()),
    "evaluate program missing": lambda b: (["evaluate", "--no-track", "--programs", f"baseline,{b.work / 'nope'}",
                                            "--corpus", b.corpus], "program.json", ()),
}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def no_ray(bench: Bench) -> None:
    """Ray is never reached for an address where nothing listens (given 127.0.0.1 it would try this machine's
    interface address instead): a stand-in that fails the test if it is."""
    from sage_dspy.scale import ray_seeds

    def forbidden():
        raise AssertionError("Ray was reached for an address where nothing listens")

    bench.monkeypatch.setattr(ray_seeds, "import_ray", forbidden)


def dead_retriever(userinfo: str = "") -> str:
    """A retriever URL at a closed port of 127.0.0.1 (nothing listens: the connection is refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://{userinfo}127.0.0.1:{port}/retrieve"


# --- #22's bad inputs, made as a user would make them

def kept_run(bench: Bench) -> Path:
    """A finished run with a kept pair, and a benchmark file beside it (bench/b.json) asking its question."""
    run = with_a_kept_pair(bench.run_copy())
    question = json.loads((run / "records.jsonl").read_text().splitlines()[0])["question"]
    bench.file("bench/b.json", json.dumps([{"question": question, "answer": "x"}]))
    return run


def decontaminate(bench: Bench, run: Path, out: Path) -> list:
    return ["decontaminate", run, "-b", bench.work / "bench/b.json", "--out", out]


def earlier_export(bench: Bench, disk_full: bool = False) -> Path:
    """exp/, an export of kept/ (a finished run with a kept pair); then, optionally, a disk that fills up while
    a format is written."""
    result = invoke("export", with_a_kept_pair(bench.run_copy("kept")), "--out", bench.work / "exp", "--splits",
                    "train=1")  # one kept pair: one split (an empty one is refused)
    assert result.exit_code == 0, result.output
    if disk_full:
        from sage_dspy.dataset.formats import verl

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        bench.monkeypatch.setattr(verl, "write", full)
    return bench.work / "exp"


def user_run_inside_an_export(bench: Bench) -> Path:
    """`sage export runs/r --out exp && cp -r runs/r exp/myrun`: the user's run now lives in the export."""
    return Path(shutil.copytree(bench.finished, earlier_export(bench) / "myrun"))


def real_index(bench: Bench) -> Path:
    """The cached index of the tiny corpus, as `sage generate` builds it under artifacts/indexes/<fingerprint>."""
    from sage_dspy.search.corpus_index import open_corpus_index

    index = open_corpus_index(bench.corpus, root=bench.work / "artifacts" / "indexes")
    return bench.work / "artifacts" / "indexes" / index.fingerprint


def users_config_and_records(bench: Bench) -> Path:
    bench.file("mine/config.json", json.dumps({"model": "gpt-4o", "temperature": 0}))
    return bench.file("mine/records.jsonl", '{"seed_id": "s1", "target": 2}\n').parent


def with_a_foreign_seed(run: Path) -> Path:
    """A seed-shaped line appended by hand: the final rewrite keeps the run's seeds only."""
    line = json.loads((run / "records.jsonl").read_text().splitlines()[0])
    with (run / "records.jsonl").open("a") as records:
        records.write(json.dumps({**line, "seed_id": "mine-1"}) + "\n")
    return run


def disk_full_in_index_build(bench: Bench) -> Path:
    """A corpus whose index is not built yet, and a disk that fills up while its arrays are saved."""
    import numpy

    real = numpy.save

    def save(file, *args, **kwargs):
        if ".building-" in str(file):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(file, *args, **kwargs)

    bench.monkeypatch.setattr(numpy, "save", save)
    return bench.corpus


def records_as_a_folder(run: Path) -> Path:
    (run / "records.jsonl").unlink()
    (run / "records.jsonl").mkdir()
    return run


def with_field(run: Path, name: str, value) -> Path:
    """The run with its first record's `name` set to `value` by hand."""
    records = (run / "records.jsonl").read_text().splitlines()
    records[0] = json.dumps({**json.loads(records[0]), name: value})
    (run / "records.jsonl").write_text("\n".join(records) + "\n")
    return run


def solve(bench: Bench, out: Path) -> list:
    return ["solve", "--questions", bench.file("q.jsonl", '{"question": "Who?", "answer": "Ada"}\n'), "--corpus",
            bench.corpus, "--out", out]


def evaluate(bench: Bench, out: Path) -> list:
    return ["evaluate", "--no-track", "--seeds", "2", "--targets", "2-3", "--k", "2", "--rounds", "1", "--corpus",
            bench.corpus, "--out", out]


def snapshot(folders) -> dict:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_loses_nothing(case, workdir, tiny_corpus_source, finished_run,
                                                        monkeypatch):
    bench = Bench(workdir, tiny_corpus_source, finished_run, monkeypatch)
    args, expected, kept = CASES[case](bench)
    before = snapshot((*kept, finished_run))
    result = invoke(*args)
    assert_one_line_error(result, expected)
    assert snapshot((*kept, finished_run)) == before
    assert not (workdir / "new-run" / "records.jsonl").exists()  # no new run was begun
    assert not list(workdir.rglob("*.partial"))


def test_the_suite_has_at_least_40_kinds():
    assert len(CASES) >= 40


# ---------------------------------------------------------------------------------- outcomes, not bad input

def test_disk_full_mid_run_is_one_line_and_keeps_the_records_so_far(workdir, tiny_corpus_source, monkeypatch):
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:  # the second seed's line: the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(run_folder.os, "fsync", fsync)
    out = workdir / "run"
    result = invoke(*GENERATE, "--seeds", "3", "--corpus", tiny_corpus_source, "--out", out)
    assert_one_line_error(result, "no space left on the device")
    lines = (out / "records.jsonl").read_bytes().splitlines()
    assert json.loads(lines[0])["seed_id"]  # the first seed is whole on disk
    assert not list(out.glob("*.partial"))
    monkeypatch.setattr(run_folder.os, "fsync", real)  # space freed: the same command resumes and finishes
    assert invoke(*GENERATE, "--seeds", "3", "--corpus", tiny_corpus_source, "--out", out).exit_code == 0
    assert len((out / "records.jsonl").read_bytes().splitlines()) == 3


def test_disk_full_while_rewriting_leaves_no_partial_files(workdir, finished_run, monkeypatch):
    run = Path(shutil.copytree(finished_run, workdir / "run"))
    before = (run / "records.jsonl").read_bytes()

    class FullDisk:  # json as the folder module sees it; writing a record line fails as on a full disk
        loads = staticmethod(json.loads)

        @staticmethod
        def dumps(value, **options):
            if "indent" not in options:  # config.json is written with an indent; record lines are not
                raise OSError(errno.ENOSPC, "No space left on device")
            return json.dumps(value, **options)

    monkeypatch.setattr(run_folder, "json", FullDisk)
    result = invoke(*GENERATE, "--corpus", json.loads((run / "config.json").read_text())["corpus"], "--out", run)
    assert_one_line_error(result, "no space left on the device")
    assert (run / "records.jsonl").read_bytes() == before and not list(run.glob("*.partial"))


def test_a_stale_lock_of_a_killed_process_never_blocks(workdir, finished_run):
    run = Path(shutil.copytree(finished_run, workdir / "run"))
    (run / run_folder.LOCK_FILE).write_text("999999\n")  # its holder is gone, and flock went with it
    result = invoke(*GENERATE, "--corpus", json.loads((run / "config.json").read_text())["corpus"], "--out", run)
    assert result.exit_code == 0, result.output


def test_ctrl_c_says_how_many_seeds_are_saved_and_how_to_resume(workdir, tiny_corpus_source, monkeypatch):
    real, appended = run_folder.RunFolder.append, []

    def append_then_interrupt(self, record):
        real(self, record)
        appended.append(record)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_folder.RunFolder, "append", append_then_interrupt)
    out = workdir / "run"
    result = invoke(*GENERATE, "--seeds", "3", "--fresh", "--corpus", tiny_corpus_source, "--out", out)
    assert result.exit_code == 130, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted: 1 of 3 seeds are saved in ") and "Traceback" not in result.output
    assert line.endswith(f"resume with: sage {' '.join(GENERATE)} --seeds 3 --corpus {tiny_corpus_source} "
                         f"--out {out}")  # the same command, without --fresh


def test_a_run_where_every_seed_failed_exits_1_and_says_so(workdir, tiny_corpus_source, monkeypatch):
    from sage_dspy.runs import scheduler

    def failing(program, task, lm_ids):
        return scheduler.record_for(task, None, lm_ids, error="RuntimeError: the model said nothing")

    monkeypatch.setattr(scheduler, "run_seed", failing)
    result = invoke(*GENERATE, "--corpus", tiny_corpus_source, "--out", workdir / "run")
    assert result.exit_code == 1, result.output
    assert "error: every seed failed (2 of 2)" in result.stderr and "Traceback" not in result.output


def test_fewer_passages_than_seeds_is_a_note(workdir):
    corpus = workdir / "one.jsonl"
    corpus.write_text('{"title": "Harbor Bridge", "text": "Harbor Bridge was designed by Ada Marlowe in 1932."}\n')
    result = invoke(*GENERATE[:3], "10", *GENERATE[4:], "--corpus", corpus, "--out", workdir / "run")
    assert result.exit_code in (0, 1), result.output
    assert "note: the corpus has 1 passage(s), so this run has 1 seed(s), not the 10 asked for" in result.stderr


def test_a_latin1_text_file_is_read_with_a_note_naming_it(workdir, tiny_passages):
    folder = workdir / "texts"
    folder.mkdir()
    for passage in tiny_passages:
        (folder / f"{passage.id}.txt").write_text(f"# {passage.title}\n{passage.text}\n", encoding="utf-8")
    (folder / "cafe.txt").write_bytes(b"# Cafe\n" + LATIN1 + b" stands near Harbor Bridge.\n")
    result = invoke(*GENERATE, "--corpus", folder, "--out", workdir / "run")
    assert result.exit_code == 0, result.output
    assert f"note: {folder / 'cafe.txt'}: line 2 is not UTF-8 (byte 0xe9 at column 4); read with " in result.stderr
