"""`sage check` as a library call: what each role's model does on fixed small tasks (check_tasks.py), measured
per adapter, and a verdict per role with one line of advice.

Measured per role and adapter: LM calls and the replies the adapter could not parse (its retries included),
the agents' tool calls (a known tool, a non-empty query, arguments the tool accepts) and retrievals, the
judge's calibration items, the longest reply against the max-tokens setting, seconds per call. A failure of
the LM service is "not checked", never a verdict on the model. Usable means: every reply in the format or
nearly (`MIN_PARSED`), the agents' calls valid and at least one search retrieving passages, the judge right on
every calibration item, the reviser returning a pair, and no reply longer than the max-tokens setting.
"""

import time
from dataclasses import dataclass, field
from typing import Callable

import dspy
from dspy.clients import base_lm

from sage_dspy.lm.adapter import ADAPTERS as ADAPTER_NAMES
from sage_dspy.lm.choice import adapter_named
from sage_dspy.lm.roles import ROLES, RoleLMs
from sage_dspy.lm.usage import counting_usage
from sage_dspy.method.trajectory import SEARCH_TOOL
from sage_dspy.redact import error_text
from sage_dspy.runs.check_tasks import TASKS, TaskResult
from sage_dspy.search.corpus import load_corpus
from sage_dspy.search.index import SearchIndex
from sage_dspy.search.passages import parse_passages
from sage_dspy.search.tool import SearchTool

# The adapters a role is tried with, in order of preference: name -> the `dspy.context` settings installing it
# ({}: the project's default, DSPy's chat adapter with its JSON fallback). A role usable only under a later one
# gets the verdict "usable with --adapter NAME".
ADAPTERS: dict[str, Callable[[], dict]] = {
    name: (lambda name=name: {"adapter": adapter_named(name)}) for name in ADAPTER_NAMES}  # chat, json, json-schema
MIN_PARSED = 0.8  # share of replies the adapter must parse
MIN_VALID_CALLS = 0.8  # share of an agent's tool calls that must be valid
FINISH_TOOL = "finish"


@dataclass
class RoleMeasure:
    """One role under one adapter."""

    role: str
    model: str
    adapter: str
    calls: int = 0
    parse_failures: int = 0
    tool_calls: int = 0
    valid_tool_calls: int = 0
    retrievals: int = 0  # searches that returned passages
    calibration: dict | None = None
    output_ok: bool | None = None
    parse_error: str = ""
    longest_reply: int = 0  # completion tokens of the longest reply
    max_tokens: int | None = None
    seconds: float = 0.0
    service_error: str = ""  # the LM service failed: nothing below is a verdict

    @property
    def parsed(self) -> float:
        return 1.0 - self.parse_failures / self.calls if self.calls else 0.0

    @property
    def seconds_per_call(self) -> float:
        return self.seconds / self.calls if self.calls else 0.0

    @property
    def problem(self) -> str:
        """Why the role is not usable under this adapter, or "" if it is."""
        agent = self.role in ("generator", "solver") and (self.tool_calls > 0 or not self.parse_error)
        problems = [
            (self.parse_error != "" or self.parsed < MIN_PARSED,
             f"{self.parse_failures} of {self.calls} replies unparseable"),
            (agent and (self.tool_calls == 0 or self.valid_tool_calls < MIN_VALID_CALLS * self.tool_calls),
             f"{self.valid_tool_calls} of {self.tool_calls} tool calls valid"),
            (agent and self.retrievals == 0, "no search retrieved a passage"),
            (self.calibration is not None and not self.calibration["passed"],
             f"{(self.calibration or {}).get('right')} of {(self.calibration or {}).get('items')} calibration "
             "items right"),
            (self.output_ok is False, "an empty revised pair"),
            (self.max_tokens is not None and self.longest_reply > self.max_tokens,
             f"a reply of {self.longest_reply} tokens over max tokens {self.max_tokens}"),
        ]
        return "; ".join(text for failed, text in problems if failed)


@dataclass
class RoleVerdict:
    role: str
    verdict: str  # "usable", "usable with --adapter X", "not usable: ...", "not checked: ..."
    advice: str
    measures: list[RoleMeasure] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.verdict.startswith("usable")


def check_models(specs: dict[str, str], role_options: dict[str, dict] | None = None, **options) -> list[RoleVerdict]:
    """`sage check`: the role LMs built as `generate` builds them (bad settings raise LMConfigError), checked.
    Every call is made: DSPy's response cache would answer a second check from the first one's replies (no
    latency, no usage to read the reply's length from), about a server that may have changed since."""
    lms = RoleLMs.from_specs(specs, role_options=role_options, **options)
    for lm in lms.lms.values():
        lm.cache = False
    return check(lms)


def check(lms: RoleLMs, roles=ROLES, adapters: dict[str, Callable[[], dict]] | None = None) -> list[RoleVerdict]:
    """Every role's tasks under every adapter, and its verdict."""
    adapters = adapters or ADAPTERS
    search = SearchTool(SearchIndex.build(load_corpus("bundled")))
    verdicts = []
    for role in roles:
        measures = []
        for name, settings in adapters.items():
            measures.append(measure(role, lms, name, settings, search))
            if measures[0].service_error:  # the service failed: no adapter can tell more, and each would wait again
                break
        verdicts.append(verdict_of(role, measures))
    return verdicts


def measure(role: str, lms: RoleLMs, adapter: str, settings: Callable[[], dict], search: SearchTool) -> RoleMeasure:
    lm = lms.lms.get(role) or dspy.settings.lm
    seen = MeasureWindow()
    result = RoleMeasure(role, getattr(lm, "model", "none"), adapter, max_tokens=_max_tokens(lm))
    started = time.perf_counter()
    try:
        with counting_usage() as spent, dspy.context(**settings()), lms.use(role):
            task = TASKS[role](search)
    except Exception as error:  # the service, not the model: recorded as such
        result.service_error = error_text(error, 200, first_line=True)
        return result
    finally:
        result.seconds = time.perf_counter() - started
    result.service_error = task.service_error
    result.calls = spent["lm_calls"]
    result.parse_failures = sum(row.get("parse_failures", 0) for row in spent["lm_usage"])
    result.longest_reply = seen.longest_reply()
    _read_task(result, task)
    return result


def _read_task(result: RoleMeasure, task: TaskResult) -> None:
    result.parse_error = task.parse_error
    result.tool_calls = len(task.steps)
    result.valid_tool_calls = sum(valid_call(step) for step in task.steps)
    result.retrievals = sum(step.tool == SEARCH_TOOL and bool(parse_passages(step.observation)) for step in task.steps)
    result.calibration = task.calibration.to_dict() if task.calibration else None
    result.output_ok = task.output_ok


def valid_call(step) -> bool:
    """A known tool, the arguments it takes (DSPy reports others as an execution error), and a query to search."""
    if step.tool not in (SEARCH_TOOL, FINISH_TOOL) or step.observation.startswith("Execution error"):
        return False
    return step.tool == FINISH_TOOL or bool(step.query.strip())


def verdict_of(role: str, measures: list[RoleMeasure]) -> RoleVerdict:
    default = measures[0]
    if default.service_error:
        return RoleVerdict(role, f"not checked: the LM service failed ({default.service_error})",
                           "fix the endpoint (model name, --api-base, key), then run sage check again", measures)
    if not default.problem:
        return RoleVerdict(role, "usable", "ready", measures)
    other = next((m for m in measures[1:] if not m.service_error and not m.problem), None)
    if other:
        return RoleVerdict(role, f"usable with --adapter {other.adapter}",
                           f"run with --adapter {other.adapter} for this role", measures)
    return RoleVerdict(role, f"not usable: {default.problem}", advice_for(role, default), measures)


def advice_for(role: str, failed: RoleMeasure) -> str:
    if failed.max_tokens is not None and failed.longest_reply > failed.max_tokens:
        return ("the server ignores the max-tokens field this provider prefix sends: try another prefix "
                "(hosted_vllm/ sends max_tokens)")
    if failed.parse_error or failed.parsed < MIN_PARSED:
        return "the model does not answer in the program's format: a larger instruction-tuned model, or a server " \
               "that enforces a JSON schema"
    if role == "judge":
        return "its verdicts decide what is kept: pass a stronger --judge-lm (one that passes every item)"
    if role in ("generator", "solver"):
        return "its tool calls do not reach the corpus: a larger model, or a server that enforces the tool schema"
    return "a larger instruction-tuned model for --reviser-lm"


class MeasureWindow:
    """The replies DSPy's global history gains from now on (it is a bounded list: entries are told apart by
    identity, not position)."""

    def __init__(self):
        self.before = {id(entry) for entry in base_lm.GLOBAL_HISTORY}

    def longest_reply(self) -> int:
        new = [entry for entry in base_lm.GLOBAL_HISTORY if id(entry) not in self.before]
        return max(((entry.get("usage") or {}).get("completion_tokens") or 0 for entry in new), default=0)


def _max_tokens(lm) -> int | None:
    kwargs = getattr(lm, "kwargs", {}) or {}
    value = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
    return int(value) if value else None
