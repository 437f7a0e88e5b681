"""Before a run pays for anything: one real query to the retriever, then one tiny call per real LM, so a wrong
endpoint or key is one clear line. The LM call bypasses DSPy's response cache: a cached reply from an earlier
run proves nothing about the endpoint."""

from sage_dspy.errors import SageError
from sage_dspy.lm.endpoint import lm_fingerprint
from sage_dspy.lm.roles import RoleLMs
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
