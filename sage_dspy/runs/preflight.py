"""Before a run pays for anything: one tiny call per real LM, so a wrong endpoint or key is one clear line."""

from sage_dspy.errors import SageError
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.redact import error_text


class LMUnreachableError(SageError, RuntimeError):
    pass


def check_lms(lms: RoleLMs) -> None:
    """One tiny call per distinct real LM before the run, so a wrong endpoint or key fails in a second with one
    clear line instead of turning every seed into a failure."""
    checked = set()
    for role, lm in lms.lms.items():
        if lm.model == MODEL_NAME or lm.model in checked:
            continue
        checked.add(lm.model)
        try:
            lm("Reply with the word ok.")
        except Exception as error:
            raise LMUnreachableError(
                f"the {role} LM {lm.model!r} did not answer ({error_text(error, 240, first_line=True)}); check "
                "the model name, --api-base, and the provider's API key variable") from None
