"""What a `compile` run leaves in MLflow: the scores and their gain, the settings that make two compiles'
scores comparable, the compiled folder, the libraries' log, the program as a model, and its prompts: a new
registry version only for a prompt the optimizer changed, every one linked to the run."""

import hashlib
import json

from sage_dspy.tracking.programs import log_program
from sage_dspy.runs.folder import TRACKING_FILE
from sage_dspy.tracking.prompts import register_baseline, register_prompts
from sage_dspy.tracking.run_logging import corpus_label, note_run_id, run_name
from sage_dspy.tracking.runs import rounded, tracked_run

# What a validation score depends on besides the program: two runs with the same `val.comparable` scored
# their programs on the same seeds, targets, attempts and fixed agents.
COMPARABLE = ("corpus", "val_size", "train_size", "random_seed", "min_target", "max_target", "k", "rounds")


def comparable_settings(settings: dict, fingerprint: str = "") -> dict:
    """The settings a validation score depends on, and a short key of them (equal keys: comparable scores)."""
    chosen = {key: settings[key] for key in COMPARABLE}
    chosen["solver_lms"] = {role: settings["lms"].get(role, "") for role in ("solver", "judge")}
    chosen["corpus_fingerprint"] = fingerprint
    key = hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:10]
    return {"key": key, "text": (f"{settings['val_size']} validation seeds (draw {settings['random_seed']}) of "
                                 f"{corpus_label(settings['corpus'])}, targets {settings['min_target']}-"
                                 f"{settings['max_target']}, K={settings['k']}, {settings['rounds']} rounds")}


def score_metrics(result) -> dict[str, float]:
    metrics = {"val.before": result.before, "val.after": result.after, "val.gain": result.gain}
    if result.heldout:
        metrics.update({"heldout.before": result.heldout["before"], "heldout.after": result.heldout["after"],
                        "heldout.gain": result.heldout["after"] - result.heldout["before"],
                        "heldout.seeds": result.heldout["seeds"]})
    return metrics


def candidate_scores(program) -> list[float]:
    """Each candidate's validation score (sage metric mean x100), in the order the optimizer scored them: GEPA's
    `detailed_results.val_aggregate_scores` (fractions), MIPROv2's full evaluations in `trial_logs`, the random
    search's `candidate_programs` by its seed order; [] when the optimizer left none."""
    details = getattr(program, "detailed_results", None)
    if details is not None and getattr(details, "val_aggregate_scores", None):
        return [100.0 * score for score in details.val_aggregate_scores]
    trials = getattr(program, "trial_logs", None)
    if trials:
        return [float(trials[t]["full_eval_score"]) for t in sorted(trials) if "full_eval_score" in trials[t]]
    candidates = getattr(program, "candidate_programs", None) or []
    ordered = sorted((c for c in candidates if isinstance(c, dict) and "score" in c), key=lambda c: c.get("seed", 0))
    return [float(c["score"]) for c in ordered]


def _fingerprint(folder) -> str:
    try:
        return json.loads((folder / "scores.json").read_text(encoding="utf-8")).get("corpus_fingerprint", "")
    except (OSError, ValueError):
        return ""


def log_compile(config, result) -> str | None:
    """One MLflow run per `compile`; returns its id (None when tracking failed to start)."""
    settings = config.to_dict()
    comparable = comparable_settings(settings, _fingerprint(result.folder))
    name = run_name("compile", config.recipe, config.optimizer, corpus_label(config.corpus), f"r{config.rounds}",
                    f"b{config.budget}", f"seed{config.random_seed}")
    tags = {"command": "compile", "recipe": config.recipe, "optimizer": config.optimizer,
            "val.comparable": comparable["key"], "val.settings": comparable["text"]}
    if result.heldout:
        tags["heldout.settings"] = (f"{result.heldout['seeds']} held-out seeds of {corpus_label(config.corpus)}, "
                                    "the same for every compile with --eval-seeds on it")
    with tracked_run(name, params=settings, tags=tags, started=result.started or None) as run:
        metrics = score_metrics(result)
        run.log_metrics(metrics)
        for step, score in enumerate(candidate_scores(result.program)):  # the curve MLflow draws
            run.log_metrics({"val.candidate": score}, step=step)
        if run.run_id:  # in the folder before it is logged: runs:/<id>/program names its compile run too
            note_run_id(result.folder / TRACKING_FILE, run.run_id)
        model_uri = log_program(result.program, name="sage-program")
        if model_uri:
            run.set_tags({"model_uri": model_uri})
        for path in sorted(result.folder.iterdir()):
            if path != result.log_file:
                run.log_artifact(path, artifact_path="program")
        if result.log_file and result.log_file.is_file():
            run.log_artifact(result.log_file, artifact_path="logs")
        if result.student is not None:  # first: in a fresh store the uncompiled prompts are version 1
            register_baseline(result.student, recipe=config.recipe)
        versions = register_prompts(result.program, prefix="sage", run_id=run.run_id,
                                    tags={"optimizer": config.optimizer, "recipe": config.recipe,
                                          "val.comparable": comparable["key"], "val.settings": comparable["text"]},
                                    metrics={k: rounded(v) for k, v in metrics.items() if k.startswith("val.")})
        run.log_dict({name: row["version"] for name, row in versions.items()}, "prompt_versions.json")
        changed = [name for name, row in versions.items() if row["changed"]]
        run.set_tags({"prompts.changed": ", ".join(changed) or "none"})
        return run.run_id
