"""Everything the commands show: the result tables, the lines under them, progress bars. No arithmetic: the
numbers arrive computed by runs/ and tracking/; this module only lays them out."""

import os
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from sage_dspy.dataset.decontaminate import CHECKS, Report
from sage_dspy.runs.evaluate_report import HEADERS, cells, rows, target_rows
from sage_dspy.runs.program_comparison import COMPARISON_COLUMNS, table_rows
from sage_dspy.redact import redact_text



def live_console(**options) -> Console:
    """A Console whose width follows COLUMNS at each print. Rich reads COLUMNS once when a Console is made and
    keeps it; these are made at import, so a COLUMNS exported before the process started would fix the width of
    every later command run in it (a test runner's, a CI shell's). Made with COLUMNS and LINES hidden, the
    Console keeps no size and reads os.environ (rich's class default) whenever it lays something out."""
    hidden = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")}
    console = Console(_environ=hidden, **options)
    del console._environ  # back to the class attribute: the live os.environ
    return console


out = live_console()
err = live_console(stderr=True)  # progress, notes and errors, so stdout holds only results
OFFLINE_RUN = "Offline LM: these numbers measure the pipeline's mechanics, not the quality of an LLM."


def progress_bar(*columns: ProgressColumn) -> Progress:
    """On stderr, gone once done: the task's description, a bar, done/total, time, then `columns`."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    *columns, console=err, transient=True)


def status(text: str) -> None:
    """A line about what is happening now, on stderr."""
    err.print(text, highlight=False)


def notes(messages: list[str]) -> None:
    for message in messages:
        err.print(f"note: {redact_text(message)}", highlight=False, soft_wrap=True)


def evaluation_interrupted(runs_root, resume_command: str) -> None:
    err.print(f"interrupted: each run finished so far is kept under {runs_root}, and the one in progress keeps its "
              f"finished seeds; resume with: {resume_command}", highlight=False, soft_wrap=True, markup=False)


def interrupted(saved: int, seeds: int, out_dir, resume_command: str) -> None:
    err.print(f"interrupted: {saved} of {seeds} seeds are saved in {out_dir}; resume with: {resume_command}",
              highlight=False, soft_wrap=True, markup=False)


def all_attempts_failed(questions: int, answers_path) -> None:
    err.print(f"error: every attempt at every question failed ({questions} of {questions} questions unanswered); "
              f"each attempt's 'error_kind' and 'raw_reply' in {answers_path} say why",
              highlight=False, soft_wrap=True, markup=False)


def all_failed(seeds: int, records_path) -> None:
    err.print(f"error: every seed failed ({seeds} of {seeds}); each record's 'error' in {records_path} says why: "
              "fix the cause, then re-run the same command (seeds the LM service failed are tried again; others "
              "need --fresh)",
              highlight=False, soft_wrap=True, markup=False)


def summary_table(summary: dict, title: str = "SAGE intrinsic evaluation") -> Table:
    table = Table(title=title)
    for column in ("target", "seeds", "% correct", "% accepted", "Avg@K", "mean searches", "kept", "failed"):
        table.add_column(column, justify="right")
    rows = [*((f"S={t}", row) for t, row in summary["per_target"].items()), ("all", summary["overall"])]
    for label, row in rows:
        table.add_row(label, str(row["seeds"]), f"{row['correct_pct']:.1f}", f"{row['accepted_pct']:.1f}",
                      f"{row['avg_at_k']:.2f}", f"{row['mean_searches']:.2f}", str(row["kept"]), str(row["failed"]))
    return table


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def usage_lines(usage: dict, per_pair: bool = True) -> list:
    """A table of calls, tokens and cost per role, the cost per accepted pair (`per_pair`), and what to do about
    a model without a price."""
    table = Table(title="LM use by role")
    for column in ("role", "model", "calls", "tokens in", "tokens out", "cost (USD)"):
        table.add_column(column, justify="left" if column in ("role", "model") else "right")
    rows = [*usage["roles"].items(), ("all", {**usage["total"], "models": []})]
    for role, row in rows:
        table.add_row(role, ", ".join(row["models"]), str(row["lm_calls"]), f"{row['prompt_tokens']:,}",
                      f"{row['completion_tokens']:,}", _usd(row["cost_usd"]))
    per = usage["per_accepted"]
    lines = [table]
    if per_pair and usage["accepted"]:
        lines.append(f"cost per accepted pair: {per['lm_calls']:.1f} LM calls, {per['tokens']:.0f} tokens, "
                     f"{_usd(per['cost_usd'])}")
    elif per_pair:
        lines.append("cost per accepted pair: no pair was accepted")
    if usage["unpriced"]:
        lines.append(f"no price known for {', '.join(usage['unpriced'])}: add one under [prices] in the --config "
                     "file to see costs")
    return lines


def generation(result, title: str, offline: bool) -> None:
    """`sage generate`'s result: the paper's table, LM use, why it stopped early, failures, the files."""
    summary = result.summary
    out.print(summary_table(summary, title=title))
    for line in usage_lines(summary["usage"]):
        out.print(line, highlight=False, markup=False)  # "[prices]" is no markup
    if summary.get("accepted"):
        out.print(accepted_line(summary["accepted"]), highlight=False)
    if summary["stopped"]:
        out.print(f"stopped: {summary['stopped']}; every finished seed is saved, re-run the same command "
                  "with a larger --max-calls or --max-cost to continue", highlight=False)
    calibration = summary.get("judge_calibration") or {}
    if calibration and not calibration["passed"]:
        out.print(f"WEAK JUDGE: {calibration['model']} got {calibration['right']} of {calibration['items']} "
                  "calibration items right; this run went on because of --allow-weak-judge, so every verdict in it "
                  "is suspect", highlight=False, markup=False)
    if summary.get("dropped"):
        out.print("dropped: " + ", ".join(f"{reason} {count}" for reason, count in summary["dropped"].items()),
                  highlight=False)
    failures = summary["failures"]
    if failures["seeds"] or failures["attempts"] or failures.get("searches"):
        out.print(f"failures: seeds {failures['seeds'] or 'none'}; attempts {failures['attempts'] or 'none'}; "
                  f"searches {failures.get('searches') or 'none'}", highlight=False)
    if offline:
        out.print(OFFLINE_RUN)
    out.print(f"records: {result.records_path}\npairs:   {result.dataset_path} "
              f"({summary['overall']['kept']} kept)")


def accepted_line(outcome: dict) -> str:
    """How many seeds an --accepted run took, or why it fell short."""
    if not outcome["short"]:
        return f"accepted: {outcome['kept']} kept pairs took {outcome['seeds']} seeds"
    return f"accepted: {outcome['kept']} of {outcome['goal']} kept pairs; {outcome['short']}"


def tracked_run(run_id: str | None, tracking_uri: str, children: int = 0) -> None:
    nested = f", with {children} nested runs (one per recipe or program)" if children else ""
    if run_id:
        out.print(f"MLflow run {run_id}{nested} in {tracking_uri} (sage ui to browse)", highlight=False)


def evaluation(results: dict[str, dict], corpus: str, lm: str) -> None:
    """`sage evaluate`'s two tables: by recipe and round, then per target after the last round."""
    out.print(evaluation_table(f"intrinsic evaluation on {corpus} (LM: {lm})", rows(results)))
    out.print(evaluation_table("per target, after the last round", target_rows(results), label="target"))


def comparison(comparisons: list[dict]) -> None:
    """`evaluate --programs`: each pair's differences with their 95% intervals, then its verdict in words."""
    if not comparisons:
        return
    table = Table(title="paired comparison on the same seeds (B - A, 95% CI)")
    for column in COMPARISON_COLUMNS:
        table.add_column(column, justify="left" if column in ("A", "B", "metric") else "right")
    for row in table_rows(comparisons):
        table.add_row(*(str(row[column]) for column in COMPARISON_COLUMNS))
    out.print(table)
    for pair in comparisons:
        left_out = f" ({pair['left_out']} seed(s) failed on a side and are left out)" if pair["left_out"] else ""
        out.print(f"{pair['b']} vs {pair['a']}: {pair['verdict']}{left_out}", highlight=False)


def report_written(report: Path, offline: bool) -> None:
    if offline:
        out.print(OFFLINE_RUN)
    out.print(f"report: {report}", highlight=False)


def evaluation_table(title: str, table_rows, label: str = "rounds") -> Table:
    """(recipe, rounds or target label, summary row) rows, as runs/evaluate_report.py makes them."""
    table = Table(title=title)
    for column in ("recipe", label, *HEADERS):
        table.add_column(column, justify="right")
    for recipe, label, row in table_rows:
        table.add_row(recipe, label, *cells(row))
    return table


def solve_table(summary: dict, title: str) -> Table:
    table = Table(title=title)
    for column in ("hops", "questions", "pass@K %", "Avg@K", "searches (correct)", "searches / attempt", "failed"):
        table.add_column(column, justify="right")
    for name, row in summary.items():
        table.add_row(name, str(row["questions"]), f"{row['pass_at_k']:.1f}", f"{row['avg_at_k']:.2f}",
                      f"{row['searches_when_correct']:.2f}", f"{row['searches_per_attempt']:.2f}",
                      str(row.get("failed", 0)))
    return table


def solved(summary: dict, title: str, offline: bool, answers: Path) -> None:
    """`sage solve`'s table per hop count, its LM use and cost, the failures by kind, and where the answers are."""
    out.print(solve_table(summary["hops"], title))
    for line in usage_lines(summary["usage"], per_pair=False):
        out.print(line, highlight=False, markup=False)
    failures = summary["failures"]
    if failures["attempts"] or failures["parse_failures"]:
        out.print(f"failures: attempts {failures['attempts'] or 'none'}; unparseable replies by role "
                  f"{failures['parse_failures'] or 'none'} (retried ones included)", highlight=False, markup=False)
    if offline:
        out.print("Offline LM: its generic search strategy, not an LLM agent; the paper's strong agent needed about "
                  "2.1 searches on HotpotQA and 2.7 on MuSiQue.")
    out.print(f"answers: {answers}", highlight=False)


def compiled(result, title: str, tracking_uri: str, offline: bool, run_id: str | None = None) -> None:
    """`sage compile`'s scores before and after (validation, held-out), where the libraries' log and the
    prompt versions went, and what to know about the scores."""
    out.print(compile_table(result, title))
    out.print(f"program: {result.folder}", highlight=False)
    for note in result.notes:
        out.print(f"note: {note}", highlight=False, markup=False)
    if result.log_file:
        out.print(f"library log: {result.log_file} (-v shows it as it runs)", highlight=False)
    if tracking_uri:
        run = f"run {run_id} in " if run_id else ""
        out.print(f"MLflow: {run}{tracking_uri}; prompt versions registered under sage.* (a prompt the "
                  "optimizer left unchanged keeps its version)", highlight=False)
    if offline:
        out.print("Offline LM: scores measure the mechanics of compilation, not the quality of an LLM.")


def compile_table(result, title: str) -> Table:
    table = Table(title=title)
    for column in ("seeds", "before", "after", "gain"):
        table.add_column(column, justify="left" if column == "seeds" else "right")
    table.add_row("validation", f"{result.before:.1f}", f"{result.after:.1f}", f"{result.gain:+.1f}")
    if result.heldout:
        held = result.heldout
        table.add_row(f"held-out ({held['seeds']})", f"{held['before']:.1f}", f"{held['after']:.1f}",
                      f"{held['after'] - held['before']:+.1f}")
    return table


def _score(text: str) -> str:
    try:
        return f"{float(text):.1f}"
    except ValueError:
        return text


def prompt_versions(versions: list[dict]) -> None:
    if not versions:
        out.print("no prompt versions yet: `sage compile` registers them", highlight=False)
    for table in prompt_versions_tables(versions):
        out.print(table)


def prompt_diff(text: str) -> None:
    out.print(text, highlight=False, markup=False)  # instructions are the LM's text, never markup


def runs(keys: list[str], rows: list[dict]) -> None:
    if not rows:
        out.print("no runs yet: `sage generate`, `sage compile` and `sage evaluate` log them", highlight=False)
    for table in runs_tables(keys, rows, out.width):
        out.print(table)


LIST_COLUMNS = ("run", "started", "command", "program", "corpus", "seeds", "kept", "accepted %", "val.after", "name")
LIST_PRIORITY = ("run", "program", "kept", "accepted %", "command", "val.after", "corpus", "started", "seeds",
                 "name")  # what a narrow terminal keeps first


def runs_list(rows: list[dict]) -> None:
    """`sage runs list`: one line per run, with as many columns as the terminal's width holds (the run id,
    program, kept and accepted first)."""
    if not rows:
        out.print("no runs yet: `sage generate`, `sage compile` and `sage evaluate` log them", highlight=False)
        return
    cells = [{column: _cell(row.get(column), "  " if column == "program" and row["parent"] else "")
              for column in LIST_COLUMNS} for row in rows]  # an evaluate child indented under its parent
    widths = {column: max(len(column), *(len(cell[column]) for cell in cells)) + 3 for column in LIST_COLUMNS}
    shown, used = set(), 2
    for column in LIST_PRIORITY:  # program and name may be cut to 24 characters
        needed = min(widths[column], 24 if column in ("program", "name") else widths[column])
        if used + needed <= out.width:
            shown.add(column)
            used += needed
    table = Table(title="runs, newest first (compare: `sage runs compare <run> <run>`)", box=box.SIMPLE_HEAD,
                  title_justify="left")
    columns = [column for column in LIST_COLUMNS if column in shown]
    rest = out.width - 2 - sum(widths[column] for column in columns if column not in ("program", "name"))
    # The program first (up to what it needs), the name the rest: both capped, or rich would squeeze them
    # together and a wider terminal could show less of the program than a narrower one.
    name_width = min(widths["name"], 24) if "name" in shown else 0
    program_width = max(min(widths["program"], rest - name_width) - 3, 1)
    caps = {"program": program_width, "name": max(rest - program_width - 6, 1)}
    for column in columns:
        table.add_column(column, justify="right" if column in ("seeds", "kept", "accepted %", "val.after") else "left",
                         no_wrap=True, overflow="ellipsis",
                         min_width=None if column in ("program", "name") else widths[column] - 3,
                         max_width=caps.get(column))
    for cell in cells:
        table.add_row(*(cell[column] for column in columns))
    out.print(table)


def _cell(value, prefix: str = "") -> str:
    if value is None or value == "":
        return "-"
    return prefix + (f"{value:.4g}" if isinstance(value, float) else str(value))


def ui_started(uri: str, port: int) -> None:
    out.print(f"MLflow UI for {uri} on http://127.0.0.1:{port} (Ctrl-C to stop)", highlight=False)


def prompt_versions_tables(versions: list[dict]) -> list[Table]:
    """One table per prompt and scoring settings (scores side by side only where they are comparable): each
    version's date, the optimizer that made it, what changed from the version before, the validation scores
    of its compile and the run. The uncompiled baseline, scored nowhere, comes first."""
    tables: dict[tuple[str, str], Table] = {}
    for row in sorted(versions, key=lambda row: (row["name"], bool(row.get("settings")), row.get("settings", ""),
                                                 row["version"])):
        group = (row["name"], row.get("settings", ""))
        if group not in tables:
            title = f"{row['name']}: " + (f"scored on {group[1]}" if group[1] else "unscored (the baseline, or versions older than their settings tag)")
            table = tables[group] = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
            for column in ("ver", "date", "optimizer", "changed", "before", "after", "run"):
                table.add_column(column, justify="right" if column in ("ver", "before", "after") else "left",
                                 no_wrap=column in ("date", "optimizer", "run"), min_width=13 if column == "changed" else None)
        tables[group].add_row(str(row["version"]), row.get("date", ""), row.get("optimizer") or "-",
                                    row.get("changed") or "-", _score(row["val.before"]), _score(row["val.after"]),
                                    row["run_id"][:8])
    return list(tables.values())


RUN_FIELDS = ("name", "command", "recipe", "program", "optimizer", "corpus", "parent", "comparable")
SHOWN_PREFIXES = ("all.", "val.", "heldout.")  # whole-run, validation and held-out scores
RUN_COLUMN = 14  # characters a run's column takes at least, borders included
WIDEST_RUN_COLUMN = 44  # and at most, however wide the terminal


def _dash_wrapped(name: str, width: int) -> str:
    """A run name broken into lines after its dashes, each at most `width` wide where the parts allow."""
    lines = [""]
    for part in name.split("-"):
        piece = part if not lines[-1] else f"-{part}"
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines[-1] += "-"
            lines.append(part)
        else:
            lines[-1] += piece
    return "\n".join(lines)


def runs_tables(keys: list[str], rows: list[dict], width: int) -> list[Table]:
    """Runs as columns, fields and metrics as rows: as many runs per table as `width` holds. Of the metrics,
    the whole-run (all.*), validation (val.*) and held-out (heldout.*) ones when there are any."""
    shown = [k for k in keys if k.startswith(SHOWN_PREFIXES)] or keys
    labels = [*RUN_FIELDS, *shown]
    label_width = max(len(label) for label in labels)
    per_table = max(1, (width - label_width - 4) // RUN_COLUMN)
    # a wide terminal: fewer line breaks in names rather than empty space on the right
    column = max(RUN_COLUMN, min(WIDEST_RUN_COLUMN, (width - label_width - 4) // max(1, min(per_table, len(rows)))))
    tables = []
    for start in range(0, len(rows), per_table):
        group = rows[start:start + per_table]
        table = Table(title="runs" if not start else None, box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column("", no_wrap=True, style="bold")
        for row in group:
            table.add_column(row["run"], justify="right", overflow="fold", max_width=column - 2)
        used = [f for f in RUN_FIELDS if any(row.get(f) for row in group)]
        for field in used:
            table.add_row(field, *(_dash_wrapped(row.get(field) or "-", column - 3) for row in group))
        for key in shown:
            if any(row.get(key) is not None for row in group):
                table.add_row(key, *("-" if row.get(key) is None else f"{row[key]:.2f}" for row in group))
        tables.append(table)
    return tables


def exported(result) -> None:
    """`sage export`: pairs per split, rows per format and split, and which formats lack some demonstrations."""
    table = Table(title=f"exported {sum(result.splits.values())} pairs to {result.out}")
    if result.removed:
        table.caption = (f"left out {sum(result.removed.values())} pairs (each in removed.jsonl): "
                         + ", ".join(f"{count} {rule}" for rule, count in result.removed.items()))
    table.add_column("format")
    for split in result.splits:
        table.add_column(split, justify="right")
    table.add_row("pairs", *(str(count) for count in result.splits.values()))
    for name, rows in result.rows.items():
        table.add_row(name, *(str(rows[split]) for split in result.splits))
    out.print(table)
    if result.settings:  # the RL recipes' defaults cut these pairs' rollouts short (dataset/settings.py)
        out.print("least trainer settings these pairs fit in (export.json and the hf card have them too):",
                  highlight=False)
        for line in result.settings.lines():
            out.print(f"  {line}", highlight=False, markup=False)
    short = [name for name, rows in result.rows.items() if rows != result.splits]
    if short:
        out.print(f"{', '.join(short)}: a pair whose kept round has no correct attempt using only the search tool "
                  "has no demonstration", highlight=False)


SHOWN_FLAGS = 10


def contamination_table(report: Report) -> Table:
    table = Table(title=f"contamination of {report.records} kept pairs (flagged pairs per check)")
    for column in ("benchmark", "items", *CHECKS, "any"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, counts in report.counts().items():
        flagged = len({f.record_index for f in report.flags if f.benchmark == name})
        table.add_row(name, str(report.benchmarks[name]), *(str(counts[c]) for c in CHECKS), str(flagged))
    return table


def _evidence(flag) -> str:
    """"; anchors 3/4, same answer": what the match rests on, beside its score."""
    evidence = flag.evidence
    if not evidence:
        return ""
    found, missing = len(evidence["anchors"]), len(evidence["missing_anchors"])
    return f"; anchors {found}/{found + missing}" + (", same answer" if evidence["same_answer"] else "")


def contamination(report: Report, listed_all: bool) -> None:
    """`sage decontaminate`: flagged pairs per benchmark and check, then the first flags themselves."""
    out.print(contamination_table(report))
    for flag in report.flags[:SHOWN_FLAGS]:
        out.print(f"{flag.benchmark}#{flag.item_index} {flag.check} ({flag.similarity:.2f}{_evidence(flag)}): "
                  f"{flag.question!r} ~ {flag.item_question!r}", highlight=False, markup=False)
    if len(report.flags) > SHOWN_FLAGS:
        out.print(f"... and {len(report.flags) - SHOWN_FLAGS} more flags" + ("" if listed_all else
                                                                                 " (--out FILE lists them all)"))
    out.print(f"{len(report.flagged_records())} of {report.records} kept pairs flagged", highlight=False)


def checked(verdicts: list, offline: bool) -> None:
    """`sage check`'s table (one row per role and adapter), then each role's verdict and advice."""
    table = Table(title="sage check: each role on fixed small tasks")
    for column in ("role", "model", "adapter", "calls", "parsed", "tool calls valid", "retrieved", "judge items",
                   "longest reply", "s/call"):
        table.add_column(column, justify="left" if column in ("role", "model", "adapter") else "right")
    for verdict in verdicts:
        for m in verdict.measures:
            items = f"{m.calibration['right']}/{m.calibration['items']}" if m.calibration else "-"
            tools = f"{m.valid_tool_calls}/{m.tool_calls}" if m.role in ("generator", "solver") else "-"
            limit = f" (max {m.max_tokens})" if m.max_tokens else ""
            table.add_row(m.role, m.model, m.adapter, str(m.calls), "-" if m.service_error else f"{m.parsed:.0%}",
                          tools, str(m.retrievals) if tools != "-" else "-", items, f"{m.longest_reply}{limit}",
                          f"{m.seconds_per_call:.2f}")
    out.print(table)
    for verdict in verdicts:
        out.print(f"{verdict.role}: {verdict.verdict}; advice: {verdict.advice}", highlight=False, markup=False,
                  soft_wrap=True)
    if offline:
        out.print(OFFLINE_RUN)
