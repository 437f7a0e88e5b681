"""Before a run pays for anything: one real query to the retriever, then one tiny call per real LM, so a wrong
endpoint or key is one clear line. The LM call bypasses DSPy's response cache: a cached reply from an earlier
run proves nothing about the endpoint. Then the judge's calibration (method/calibration.py): a judge that gets a
fixed, indisputable item wrong stops the run before any seed, unless the user insists (`allow_weak_judge`)."""

import warnings

import dspy

from sage_dspy.errors import SageError
from sage_dspy.lm.endpoint import lm_fingerprint
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.method.calibration import calibrate_judge
from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.redact import error_text, redact_text
from sage_dspy.search.remote import RemoteIndex, SearchFailed

PREFLIGHT_QUERY = "history"  # any real query: an empty one is answered without asking the server


class RetrieverUnreachableError(SageError, RuntimeError):
    pass


class LMUnreachableError(SageError, RuntimeError):
    pass


def check_retriever(url: str) -> None:
    """One real query to the retriever at `url` (none for ""), with its usual retries: a server that is down,
    at a wrong path, or answering something other than Search-R1's reply is one line, never a run of void seeds."""
    if not url:
        return
    try:
        RemoteIndex(url).search(PREFLIGHT_QUERY)  # the request a search makes
    except SearchFailed as failure:
        raise RetrieverUnreachableError(
            f"the retriever at {redact_text(url)} did not answer a test query ({failure.kind}: {failure}); start "
            "it (e.g. `sage serve-index --corpus ...`) or fix --retriever") from None


def check_lms(lms: RoleLMs) -> None:
    """One tiny call per distinct real LM before the run, so a wrong endpoint or key fails in a second with one
    clear line instead of turning every seed into a failure."""
    checked = set()
    for role, lm in lms.lms.items():
        reached = (lm.model, lm_fingerprint(lm))  # one model at two endpoints is two checks
        if lm.model == MODEL_NAME or reached in checked:
            continue
        checked.add(reached)
        try:
            lm("Reply with the word ok.", cache=False)
        except Exception as error:
            raise LMUnreachableError(
                f"the {role} LM {lm.model!r} did not answer ({error_text(error, 240, first_line=True)}); check "
                "the model name, --api-base, and the provider's API key variable") from None


class WeakJudgeError(SageError, RuntimeError):
    pass


WEAK_JUDGE = "WEAK JUDGE"  # how the warning and the printed line start, when a run goes on with one


def check_judge(lms: RoleLMs, allow_weak_judge: bool = False) -> dict:
    """The judge's calibration (about six short calls), as a dict for the run's summary. A failed one raises
    WeakJudgeError naming the items it got wrong, or with `allow_weak_judge` warns and lets the run go on."""
    with lms.use("judge"), dspy.context(callbacks=[]):  # a check before the run: not among the run's traces
        calibration = calibrate_judge()
    model = lms.ids().get("judge", "the configured LM")
    if model == lms.ids().get("solver") and model != MODEL_NAME:
        warnings.warn(f"the judge is {model}, the solver's own model (--lm sets every role, --judge-lm the judge "
                      "alone): a model judging its own answers is what the calibration items check")
    if not calibration.passed and not allow_weak_judge:
        raise WeakJudgeError(f"the judge LM {model!r} got {calibration.summary()}: its verdicts would decide which "
                             "pairs are kept; pass a stronger --judge-lm, or --allow-weak-judge to run anyway")
    if not calibration.passed:
        warnings.warn(f"{WEAK_JUDGE}: the judge LM {model!r} got {calibration.summary()}; the run went on "
                      "(--allow-weak-judge), so every verdict in it is suspect")
    return {"model": model, **calibration.to_dict()}
