"""What a corpus must have for the LMs a run uses, checked once the corpus is open and before any seed runs."""

from collections.abc import Sequence
from itertools import islice

from sage_dspy.errors import SageError
from sage_dspy.offline.engine import MODEL_NAME
from sage_dspy.search.passages import Passage

SAMPLE = 200  # passages looked at: enough to see a corpus that has no titles at all, cheap on any store


class CorpusNeedsError(SageError, ValueError):
    pass


def check_titles_for_offline(passages: Sequence[Passage], models: dict[str, str], corpus: str) -> None:
    """The offline LM writes questions by linking passages through their titles (one passage names another's
    title); over passages that have none every seed would fail at run time. Say so before the run, with the fix.
    Real LMs need no titles."""
    offline_roles = sorted(role for role, model in models.items() if model == MODEL_NAME)
    if not offline_roles:
        return
    sample = list(islice(iter(passages), SAMPLE))
    if sample and not any(passage.title.strip() for passage in sample):
        raise CorpusNeedsError(
            f"the passages of {corpus} have no titles, and the offline LM ({', '.join(offline_roles)}) links "
            "passages by their titles; pass --title-field NAME (the records' title field), or a real --lm")
