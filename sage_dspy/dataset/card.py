"""The Hugging Face dataset card: YAML metadata the Hub reads, and how the pairs were made, run by run.

The metadata goes through `huggingface_hub.DatasetCardData` (the Hub's own writer, so field names and
layout are the Hub's); the body holds each run's provenance and its intrinsic table (the paper's: % correct,
% accepted, Avg@K and mean searches per target S).
"""

from collections import defaultdict
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.pairs import Run
from sage_dspy.dataset.settings import CHARS_PER_TOKEN, trainer_settings

ROLES = ("generator", "solver", "judge", "reviser")
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def size_category(count: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if count < limit), "n>1M")


def source_dataset(corpus: str) -> str:
    """'original' for the bundled corpus or a local file; a Hub dataset name as it was given."""
    if corpus == "bundled" or _local(corpus):
        return "original"
    return corpus


def _local(corpus: str) -> bool:
    """A path on the user's machine, even one gone since the run: a Hub name is `name` or `owner/name`."""
    return (Path(corpus).exists() or corpus.endswith((".jsonl", ".json", ".parquet", ".csv"))
            or corpus.startswith(("/", "~", ".")) or "\\" in corpus or corpus.count("/") > 1)


def card_data(counts: dict[str, int], context: ExportContext) -> DatasetCardData:
    """No `configs:` block: splits come from the data files' names (formats/hf.py says why)."""
    corpora = [run.settings.get("corpus", "bundled") for run in context.runs.values()]
    return DatasetCardData(
        license=context.license,
        language=["en"] if set(corpora) == {"bundled"} else None,  # other corpora: the user knows, we do not
        pretty_name="SAGE deep-search QA pairs",
        task_categories=["question-answering"],
        size_categories=[size_category(sum(counts.values()))],
        source_datasets=sorted({source_dataset(corpus) for corpus in corpora}),
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        tags=["synthetic", "sage"],
    )


def corpus_label(corpus: str) -> str:
    """A local corpus by its file or folder name only: the card is published by --push-to-hub, and the
    absolute path of the user's machine has no business there (the fingerprint identifies the corpus)."""
    if corpus == "bundled" or source_dataset(corpus) != "original":
        return corpus
    return Path(corpus).name


def _models(pairs: list[dict]) -> dict[str, str]:
    seen = defaultdict(set)
    for pair in pairs:
        for role, model in pair["lms"].items():
            seen[role].add(model)
    return {role: ", ".join(sorted(seen[role])) or "unknown" for role in ROLES}


def _usd(value) -> str:
    return "unknown (a model has no price)" if value is None else f"${value:.4f}"


def run_section(run: Run, pairs: list[dict]) -> str:
    s, summary = run.settings, run.summary
    overall, per_accepted = summary["overall"], summary.get("usage", {}).get("per_accepted", {})
    corpus = summary.get("corpus", {})
    models = _models(pairs)
    facts = [
        ("generator / solver / judge / reviser", " / ".join(f"`{models[role]}`" for role in ROLES)),
        ("recipe", s.get("recipe", "")),
        ("target searches S", f"{s.get('min_target')}-{s.get('max_target')}"),
        ("attempts K", s.get("k")),
        ("revision rounds", s.get("rounds")),
        ("protocol", s.get("protocol", "")),
        ("seed", s.get("random_seed")),
        ("corpus", f"`{corpus_label(str(s.get('corpus', '')))}` ({corpus.get('passages', '?')} passages, "
                   f"fingerprint `{corpus.get('fingerprint', 'unknown')}`)"),
        ("yield", f"{overall['kept']} kept of {overall['seeds']} seeds "
                  f"({100.0 * overall['kept'] / overall['seeds'] if overall['seeds'] else 0:.1f}%); "
                  f"{len(pairs)} exported"),
        ("cost per accepted pair", f"{per_accepted.get('lm_calls') or 0:.1f} LM calls, "
                                   f"{_usd(per_accepted.get('cost_usd'))}"),
        ("MLflow run id", f"`{run.mlflow_run_id}`" if run.mlflow_run_id else "not tracked"),
    ]
    lines = [f"### Run `{run.name}`", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts), ""]
    return "\n".join(lines + intrinsic_table(summary))


def intrinsic_table(summary: dict) -> list[str]:
    lines = ["| target | seeds | % correct | % accepted | Avg@K | mean searches | kept | failed |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [*((f"S={t}", row) for t, row in summary["per_target"].items()), ("all", summary["overall"])]
    for label, row in rows:
        lines.append(f"| {label} | {row['seeds']} | {row['correct_pct']:.1f} | {row['accepted_pct']:.1f} | "
                     f"{row['avg_at_k']:.2f} | {row['mean_searches']:.2f} | {row['kept']} | {row['failed']} |")
    return lines


def settings_section(pairs: list[dict], context: ExportContext) -> list[str]:
    """The RL recipes' settings these pairs need (settings.py), as overrides to paste."""
    settings = trainer_settings(pairs, context)
    if settings is None:
        return []
    spread = ", ".join(f"{count} need {n}" for n, count in settings.searches.items())
    return ["## Training settings", "",
            f"Searches per pair (its shortest correct attempt): {spread}. A rollout cut off before its last search "
            "cannot reach the answer, and the recipes' defaults allow two searches (Search-R1 `max_turns=2`, verl "
            "`max_assistant_turns=2`). These are the least values the pairs fit in: keep any larger value a recipe "
            "already sets. Lengths are in tokens, estimated at "
            f"{CHARS_PER_TOKEN} characters a token (they err long); check them with your tokenizer.", "",
            "```", "# Search-R1 (train_ppo.sh)", *(f"{k}={v}" for k, v in settings.search_r1.items()),
            "# verl (search recipe overrides)", *(f"{k}={v}" for k, v in settings.verl.items()), "```", ""]


def dataset_card(counts: dict[str, int], pairs: list[dict], context: ExportContext) -> DatasetCard:
    by_run = defaultdict(list)
    for pair in pairs:
        by_run[pair["source_run"]].append(pair)
    shares = ", ".join(f"{split} {share:g}" for split, share in context.ratios.items())
    body = [
        "# SAGE deep-search QA pairs",
        "",
        "Question-answer pairs that need several searches over a corpus, generated with "
        "[sage-dspy](https://arxiv.org/abs/2601.18202) (SAGE as a DSPy program): a generator proposes a pair "
        "from a seed passage, a search agent tries it K times, and execution feedback drives revisions until the "
        "agent answers it correctly with at least the target number of searches S. Every pair here was kept: "
        "correct, at least S searches, at least two.",
        "",
        "## Splits",
        "",
        " | ".join(f"{split}: {count}" for split, count in counts.items()),
        "",
        f"Requested shares: {shares} (split seed {context.split_seed}). Pairs that share a seed passage or a "
        "supporting passage are always in the same split, so no passage that answers a question of one split "
        "is in the evidence of a question of another: the splits are seed- and passage-disjoint. They are not "
        "answer-disjoint: two questions built on different passages can share an answer (a year, a country, "
        "yes or no) and land in different splits.",
        "",
        "## Fields",
        "",
        "`question`, `answer`, `answers` (the answer and the wordings the judge accepted), `answer_type`, "
        "`target_searches` (S), `searches` (fewest searches of a correct attempt), `pass_at_k`, `avg_at_k`, "
        "`k`, `seed_id`, `supporting_ids` (passages the answering steps cite), `rounds_used`, `lms` (model per "
        "role), `run`, `mlflow_run_id`, `pair_id`.",
        "",
        *settings_section(pairs, context),
        "## How it was made",
        "",
        *(run_section(context.runs[name], run_pairs) + "\n" for name, run_pairs in by_run.items()),
    ]
    data = card_data(counts, context)
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))
