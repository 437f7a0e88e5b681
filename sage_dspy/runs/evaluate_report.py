"""The evaluation's report: the table by recipe and round, two plots, and a markdown file beside the run."""

from pathlib import Path

from sage_dspy.outputs import REPORT, mark

COLUMNS = ("correct_pct", "accepted_pct", "avg_at_k", "mean_searches")
HEADERS = ("% correct", "% accepted", "Avg@K", "mean searches")


def rows(results: dict[str, dict]) -> list[tuple[str, str, dict]]:
    """(recipe, rounds label, overall row) for every recipe and round count, as in the paper's table."""
    table = []
    for recipe, result in results.items():
        for rounds, summary in result["by_round"].items():
            if recipe == "generator_only" and rounds > 0:
                break  # no feedback rounds: one row
            table.append((recipe, "generator" if rounds == 0 else f"+{rounds}", summary["overall"]))
    return table


def target_rows(results: dict[str, dict]) -> list[tuple[str, str, dict]]:
    """Per-target rows after the last round of each recipe."""
    table = []
    for recipe, result in results.items():
        last = result["by_round"][max(result["by_round"])]
        for target, row in last["per_target"].items():
            table.append((recipe, f"S={target}", row))
    return table


def cells(row: dict) -> list[str]:
    """A row's four numbers as the report shows them (here in markdown, on the terminal in cli/printing.py)."""
    return [f"{row['correct_pct']:.1f}", f"{row['accepted_pct']:.1f}", f"{row['avg_at_k']:.2f}",
            f"{row['mean_searches']:.2f}"]


def markdown(title: str, table_rows, label: str = "rounds") -> str:
    """A markdown table: recipe, the row's `label` (rounds, or target for the per-target table), the numbers."""
    lines = [f"### {title}", "", f"| recipe | {label} | " + " | ".join(HEADERS) + " |",
             "|---|---|" + "---|" * len(HEADERS)]
    lines += [f"| {recipe} | {label} | " + " | ".join(cells(row)) + " |" for recipe, label, row in table_rows]
    return "\n".join(lines)


def plot_searches_by_recipe(results: dict[str, dict], path: Path) -> Path:
    """Achieved searches against target for correct pairs, one colour per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.5))
    offsets = {recipe: (i - (len(results) - 1) / 2) * 0.18 for i, recipe in enumerate(results)}
    top = 2
    for recipe, result in results.items():
        correct = [r for r in result["records"] if r["correct"]]
        axes.scatter([r["target"] + offsets[recipe] for r in correct], [r["searches"] for r in correct],
                     alpha=0.6, label=recipe, s=22)
        top = max([top] + [r["searches"] for r in correct] + [r["target"] for r in result["records"]])
    axes.plot([1, top], [1, top], linestyle="--", color="grey", label="searches = target")
    axes.set_xlabel("target searches S")
    axes.set_ylabel("fewest searches of a correct attempt")
    axes.set_title("Achieved difficulty against target")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_accepted_by_round(results: dict[str, dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for recipe, result in results.items():
        rounds = sorted(result["by_round"])
        axes.plot(rounds, [result["by_round"][r]["overall"]["accepted_pct"] for r in rounds], marker="o",
                  label=recipe)
    axes.set_xlabel("revision rounds")
    axes.set_ylabel("% accepted")
    axes.set_ylim(0, 100)
    axes.set_xticks(sorted({r for result in results.values() for r in result["by_round"]}))
    axes.set_title("Accepted pairs by round")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_report(results: dict[str, dict], folder: Path, header: str, comparison: str = "") -> Path:
    """report.md and report.html: the tables, the plots, the paired comparison of `--programs` if any, the runs."""
    mark(folder, REPORT)
    searches = plot_searches_by_recipe(results, folder / "searches_vs_target.png")
    accepted = plot_accepted_by_round(results, folder / "accepted_by_round.png")
    reuse = [f"- `{recipe}`: {'reused' if r['reused'] else 'ran'} `{r['folder']}`" for recipe, r in results.items()]
    text = "\n\n".join([
        f"# sage evaluate\n\n{header}",
        *([comparison] if comparison else []),
        markdown("Intrinsic evaluation (all targets)", rows(results)),
        markdown("Per target, after the last round", target_rows(results), label="target"),
        f"![searches against target]({searches.name})\n\n![accepted by round]({accepted.name})",
        "Runs:\n" + "\n".join(reuse),
    ])
    report = folder / "report.md"
    report.write_text(text + "\n", encoding="utf-8")
    (folder / "report.html").write_text(html_report(text, folder), encoding="utf-8")
    return report


def html_report(text: str, folder: Path) -> str:
    """The report as one HTML file with its plots inside (data URIs): the MLflow UI shows a markdown artifact
    as text, its image links included, but renders an HTML artifact, which cannot reach files beside it."""
    import base64

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(text)
    for image in sorted(folder.glob("*.png")):
        data = base64.b64encode(image.read_bytes()).decode("ascii")
        body = body.replace(f'src="{image.name}"', f'src="data:image/png;base64,{data}"')
    style = ("body{font-family:sans-serif;max-width:60em;margin:1em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:100%}")
    return f"<!doctype html><meta charset=utf-8><title>sage evaluate</title><style>{style}</style>\n{body}"
