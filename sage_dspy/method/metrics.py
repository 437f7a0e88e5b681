"""The optimizer's metric, built on feedback.py so that training and generation agree on a good pair.

Full score for a correct pair that needs at least the target searches; partial credit for a correct but too
easy pair, by how close its searches came to the target; zero for an incorrect or unparseable one. The
feedback text is what `dspy.GEPA` reflects on.
"""

import dspy

from sage_dspy.method.feedback import NO_GENERATOR_SEARCH, UNGROUNDED, Verdict, drop_reason

TOO_EASY_CEILING = 0.5  # a too-easy pair never scores as much as half an accepted one
UNGROUNDED_FEEDBACK = ("Not grounded: the answer is stated in no passage your searches retrieved. Search the "
                       "corpus first, then take the answer word for word from the last passage on the path.")


def score_verdict(verdict: Verdict | None) -> float:
    if verdict is None or not verdict.correct:
        return 0.0
    if verdict.accepted:
        return 1.0
    return TOO_EASY_CEILING * (verdict.searches or 0) / max(verdict.target, 1)


def explain_verdict(verdict: Verdict | None, question: str, attempts=()) -> str:
    if verdict is None or not question:
        return "No usable question was produced: write a question, a short answer and its steps."
    searches = [a.searches for a in attempts]
    if verdict.accepted:
        return (f"Accepted: correct in {verdict.avg_at_k:.0%} of attempts and it needs {verdict.searches} searches "
                f"(target {verdict.target}).")
    if verdict.correct:
        return (f"Too easy: the search agent answered with only {verdict.searches} searches, target "
                f"{verdict.target}. Describe intermediate entities instead of naming them, and make the last "
                "phrase too common to search for directly, so every hop is necessary.")
    return (f"Incorrect: no attempt reached the answer (searches per attempt: {searches}). The question is "
            "ambiguous or a step leads elsewhere: make every quoted phrase unambiguous, so that its first "
            "occurrence leads to the intended name, and state an answer the passages support.")


def sage_metric(example, prediction, trace=None, pred_name=None, pred_trace=None):
    """The five-argument form GEPA requires; other optimizers read the `score` (a float works as well)."""
    verdict = getattr(prediction, "verdict", None)
    pair = getattr(prediction, "pair", None)
    rounds = getattr(prediction, "rounds", None) or []
    attempts = rounds[-1].attempts if rounds else ()
    grounding = getattr(prediction, "grounding", None)
    if verdict is not None and drop_reason(verdict, grounding) in (NO_GENERATOR_SEARCH, UNGROUNDED):
        # an accepted pair the generation run would drop scores nothing, so training and generation agree
        return dspy.Prediction(score=0.0, feedback=UNGROUNDED_FEEDBACK)
    score = score_verdict(verdict)
    return dspy.Prediction(score=score, feedback=explain_verdict(verdict, getattr(pair, "question", ""), attempts))
