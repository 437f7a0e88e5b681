"""The trainer settings an export's pairs need: enough turns for their searches, and lengths that hold them.

Every kept pair needs at least two searches, and a rollout cut off before its last search cannot reach the
answer, so a recipe run with its defaults (Search-R1's `train_ppo.sh`: `max_turns=2`; verl's search recipe:
`max_assistant_turns=2`) never sees the harder pairs solved. The counts come from each pair's demonstration
(chats.transcript: the shortest correct attempt, what the SFT formats hold):
- Search-R1 (`search_r1/llm_agent/generation.py` `run_llm_loop`): every loop turn may search, and a last
  rollout after the loop answers, so `max_turns` = the most searches a pair needs. `data.max_start_length`
  holds the prompt, `data.max_response_length` one turn's generation, `data.max_obs_length` one information
  block, and `data.max_prompt_length` follows `train_ppo.sh`'s rule: start + response * (turns - 1) +
  observation * turns.
- verl (`verl/experimental/agent_loop/tool_agent_loop.py`): each search is an assistant turn and a tool
  (user) turn, and the answer one more assistant turn, so `max_assistant_turns` = searches + 1 and
  `max_user_turns` = searches; `data.max_response_length` holds every turn after the prompt, tool results
  included, and `max_tool_response_length` (characters) one result.
Token counts are estimated at CHARS_PER_TOKEN characters a token, fewer than English text averages with BPE
tokenizers (about 4), so they err long; check them with your model's tokenizer.
"""

import json
import math
from collections import Counter
from dataclasses import dataclass

from sage_dspy.dataset.chats import Transcript, demonstrations
from sage_dspy.dataset.context import ExportContext
from sage_dspy.dataset.formats import search_r1, sft_search_r1, sft_verl, verl

CHARS_PER_TOKEN = 3
ROUND_TO = 64  # limits are given in multiples of this many tokens


@dataclass(frozen=True)
class TrainerSettings:
    searches: dict[int, int]  # pairs per number of searches their demonstration makes
    search_r1: dict[str, int]  # Search-R1 overrides (train_ppo.sh keys)
    verl: dict[str, int | str]  # verl overrides (hydra keys of the search recipe)

    def to_dict(self) -> dict:
        return {"searches": {str(k): v for k, v in self.searches.items()}, "chars_per_token": CHARS_PER_TOKEN,
                "search_r1": self.search_r1, "verl": self.verl}

    def lines(self) -> list[str]:
        spread = ", ".join(f"{count} with {n}" for n, count in self.searches.items())
        return [f"searches per pair: {spread}",
                "Search-R1: " + " ".join(f"{k}={v}" for k, v in self.search_r1.items()),
                "verl: " + " ".join(f"{k}={v}" for k, v in self.verl.items())]


def tokens(text_length: int) -> int:
    return max(ROUND_TO, math.ceil(text_length / CHARS_PER_TOKEN / ROUND_TO) * ROUND_TO)


def _verl_response(chat: Transcript) -> int:
    """Characters of everything after the prompt: the assistant turns, their calls and the tool results."""
    return sum(len(m.get("content") or "") + len(json.dumps(m.get("tool_calls") or "", ensure_ascii=False))
               for m in sft_verl.messages(chat)[2:])


def trainer_settings(pairs: list[dict], context: ExportContext) -> TrainerSettings | None:
    """The settings every exported pair fits in; None when no pair has a demonstration to measure."""
    chats = [chat for chat, _ in demonstrations(pairs, context)]
    if not chats:
        return None
    most = max(len(chat.calls) for chat in chats)
    observations = [call.observation.strip() for chat in chats for call in chat.calls] or [""]
    prompt = max(len(search_r1.PREFIX.format(question=search_r1.search_r1_question(c.question))) for c in chats)
    turn = tokens(max(len(t) for c in chats for t in sft_search_r1.model_turns(c)))
    observation = tokens(max(len(sft_search_r1.information(o)) for o in observations))
    search_r1_settings = {
        "max_turns": most,
        "data.max_start_length": tokens(prompt),
        "data.max_response_length": turn,
        "data.max_obs_length": observation,
        # train_ppo.sh's own rule for the prompt the rollout grows into (its comment above the command)
        "data.max_prompt_length": tokens(prompt) + turn * (most - 1) + observation * most,
    }
    verl_settings = {
        "actor_rollout_ref.rollout.agent.default_agent_loop": verl.AGENT_LOOP,
        "actor_rollout_ref.rollout.multi_turn.max_assistant_turns": most + 1,
        "actor_rollout_ref.rollout.multi_turn.max_user_turns": most,
        "actor_rollout_ref.rollout.multi_turn.max_tool_response_length":
            max(len(json.dumps({"result": o}, ensure_ascii=False)) for o in observations),
        "data.max_response_length": tokens(max(_verl_response(chat) for chat in chats)),
    }
    counts = Counter(len(chat.calls) for chat in chats)
    return TrainerSettings(dict(sorted(counts.items())), search_r1_settings, verl_settings)
