"""artifacts/bench/report.md: one section per benchmark, each replaced in place by its next run."""

import json
import os
import platform
import re
import time
from pathlib import Path

REPORT = Path("artifacts/bench/report.md")
TITLE = ("# sage-dspy benchmarks\n\nEach section is written by one benchmark (`python -m bench.<name>`); "
         "rerunning it replaces only its own section.\n")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} start -->", f"<!-- bench:{name} end -->"


def write_report_section(name: str, markdown: str, path: Path = REPORT) -> Path:
    """Put `markdown` into report.md as the section `name`, replacing that section and keeping the others."""
    path = Path(path)
    start, end = _markers(name)
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def read_report_section(name: str, path: Path = REPORT) -> str | None:
    """The markdown of section `name`, or None when report.md has no such section."""
    path = Path(path)
    if not path.exists():
        return None
    start, end = _markers(name)
    found = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), path.read_text(encoding="utf-8"), re.DOTALL)
    return found.group(1) if found else None


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def save_results(results: dict, json_name: str, section: str, render, out: Path, started: float) -> dict:
    """End a benchmark run: its runtime and closing load average into `results`, then `<out>/<json_name>` and
    the report's `section` (rendered from `results` by `render`). Returns `results`."""
    results["runtime_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_1m_at_end"] = loadavg()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / json_name).write_text(json.dumps(results, indent=2), encoding="utf-8")
    write_report_section(section, render(results), out / "report.md")
    return results


def loadavg() -> float | None:
    """The 1-minute load average: above the core count, other processes took CPU from the run."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict:
    """What a benchmark's numbers were measured on, and the load when it started."""
    import dspy

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": cores, "python": platform.python_version(), "dspy": dspy.__version__,
            "loadavg_1m_at_start": loadavg()}
