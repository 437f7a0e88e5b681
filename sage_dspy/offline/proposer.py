"""Offline answers to optimizers' instruction proposals (GEPA's `new_instruction`, MIPROv2's
`proposed_instruction`): the current instruction plus the advice the feedback in the prompt calls for.

Deterministic and derived from the prompt: no feedback about a failure kind, no advice for it. The offline
generator honours the "unambiguous" advice (sage_dspy/offline/generator.py), so a compile can really help.
"""

from sage_dspy.offline.prompt import Prompt

ADVICE = {
    # failure words seen in the prompt -> the sentence an instruction gains
    ("incorrect", "ambiguous", "diverged"): "Make every quoted phrase unambiguous: its first occurrence in the "
                                           "passage must lead to the intended name or value.",
    ("too easy", "short-cut", "shortcut"): "Keep every hop necessary: ask for the answer with a phrase of "
                                           "common words, which a keyword search cannot jump to.",
}
PROPOSAL_FIELDS = ("new_instruction", "proposed_instruction")
INSTRUCTION_FIELDS = ("current_instruction", "basic_instruction", "previous_instructions")


def propose_instruction(prompt: Prompt) -> dict:
    base = (prompt.inputs.get("current_instruction") or prompt.inputs.get("basic_instruction")
            or prompt.instructions).strip()
    # Read failures from the feedback and examples only: an instruction that merely mentions "ambiguous" is
    # not evidence that anything failed.
    seen = " ".join(value for name, value in prompt.inputs.items() if name not in INSTRUCTION_FIELDS).lower()
    additions = [advice for words, advice in ADVICE.items()
                 if any(word in seen for word in words) and advice not in base]
    instruction = "\n\n".join([base, *additions]) if additions else base
    return {name: instruction for name in PROPOSAL_FIELDS if name in prompt.output_types}
