"""The deterministic offline LM: a DSPy 3.4 engine that answers every signature sage-dspy uses.

It recognises a task by its field names (stable across compiled instructions), reads the inputs from the
prompt the adapter wrote, and replies in the adapter's format. Same prompt and seed, same reply. It never
sees the corpus except through the passages in its prompt. Its output measures the pipeline's mechanics,
not the quality of an LLM.
"""

from dspy.lm15 import Message, Response, TextPart, Usage

from sage_dspy.offline import generator, judge, proposer, reviser, solver
from sage_dspy.offline.fallback import fill_any
from sage_dspy.offline.prompt import Prompt, read_prompt, write_reply

MODEL_NAME = "offline/sage-rules-v1"


def respond(prompt: Prompt) -> dict:
    """Route a prompt to the role whose fields it carries."""
    inputs, outputs = set(prompt.inputs), set(prompt.output_types)
    if "next_tool_name" in outputs:
        return generator.next_action(prompt) if "seed_passage" in inputs else solver.next_action(prompt)
    if "answering_steps" in outputs and "seed_passage" in inputs:
        return generator.write(prompt)
    if "answer" in outputs and "question" in inputs and "trajectory" in inputs:
        return solver.answer(prompt)
    if "is_correct" in outputs:
        return judge.judge(prompt.inputs)
    if "supporting_passage_id" in outputs:
        return judge.cite(prompt.inputs)
    if outputs & set(proposer.PROPOSAL_FIELDS):
        return {**fill_any(prompt), **proposer.propose_instruction(prompt)}
    if "revised_question" in outputs:
        return reviser.revise(prompt, "too_easy" if "why_too_easy" in inputs else "incorrect")
    return fill_any(prompt)


class OfflineEngine:
    """`dspy.LM("offline/sage-rules-v1", engine=OfflineEngine())`: complete(Request) -> Response."""

    def complete(self, request):
        system = request.system if isinstance(request.system, str) else ""
        user = request.messages[-1].text or "" if request.messages else ""
        json_mode = request.config.response_format is not None
        prompt = read_prompt(system, user, seed=request.config.seed, json_mode=json_mode)
        text = write_reply(respond(prompt), prompt.output_types, json_reply=prompt.json_reply)
        usage = Usage(input_tokens=(len(system) + len(user)) // 4, output_tokens=len(text) // 4)
        return Response(id=None, model=request.model, message=Message.assistant([TextPart(text)]),
                        finish_reason="stop", usage=usage)

    def dump_state(self) -> dict:
        return {}

    @classmethod
    def load_state(cls, state: dict) -> "OfflineEngine":
        return cls()


class AsyncOfflineEngine:
    """The same engine for `acall`: DSPy needs an async counterpart for a custom engine."""

    def __init__(self, engine: OfflineEngine | None = None):
        self.engine = engine or OfflineEngine()

    async def complete(self, request):
        return self.engine.complete(request)
