"""A question-answer pair as it moves through the loop."""

import re
from dataclasses import dataclass, field

from sage_dspy.method.trajectory import Step

_PASSAGE_ID = re.compile(r"\(id: ([^)\s]+)\)")


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    answer_type: str
    steps: list[str]
    origin: str  # "generated", "revised:too_easy", "revised:incorrect", "resampled"
    trajectory: list[Step] = field(default_factory=list)  # the generator's searches (empty for a revision)
    reasoning: str = ""

    @property
    def cited_ids(self) -> list[str]:
        """Passage ids the answering steps cite, in order: the pair's supporting passages."""
        return list(dict.fromkeys(_PASSAGE_ID.findall("\n".join(self.steps))))


def as_steps(value) -> list[str]:
    """LMs return steps as a list or as one block of lines; keep them as a list of non-empty lines."""
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return [str(step).strip() for step in (value or []) if str(step).strip()]
