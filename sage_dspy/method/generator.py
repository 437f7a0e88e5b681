"""Generator: the agentic proposer, and the part an optimizer compiles."""

import dspy

from sage_dspy.answers import answer_type_of
from sage_dspy.method.pair import QAPair, as_steps
from sage_dspy.lm.react import ReAct
from sage_dspy.search.passages import format_passage, Passage
from sage_dspy.search.tool import SearchTool
from sage_dspy.method.signatures import ProposeQA
from sage_dspy.method.trajectory import steps_of

MAX_GENERATOR_SEARCHES = 20  # the paper's budget for the generator's own exploration


class Generator(dspy.Module):
    """Searches the corpus from a seed passage, then writes question, answer and answering steps."""

    def __init__(self, search: SearchTool, max_searches: int = MAX_GENERATOR_SEARCHES):
        super().__init__()
        self.propose = ReAct(ProposeQA, tools=[search], max_iters=max_searches)

    def forward(self, seed: Passage, target_searches: int, answer_type: str, origin: str = "generated"):
        result = self.propose(seed_passage=format_passage(seed), target_searches=target_searches,
                              answer_type=answer_type)
        pair = QAPair(
            question=str(result.question).strip(),
            answer=str(result.answer).strip(),
            answer_type=answer_type_of(str(result.answer), default=answer_type),
            steps=as_steps(result.answering_steps),
            origin=origin,
            trajectory=steps_of(result.trajectory),
            reasoning=str(getattr(result, "reasoning", "")),
        )
        return dspy.Prediction(pair=pair)
