"""Reading a dspy.ReAct trajectory: its steps, how many searches it made, what passages it saw."""

from dataclasses import asdict, dataclass

from sage_dspy.search.passages import failure_kind, parse_passages, Passage

SEARCH_TOOL = "search"
TOOL_ERROR = f"Execution error in {SEARCH_TOOL}"  # dspy.ReAct's observation when the tool call raised


@dataclass(frozen=True)
class Step:
    thought: str
    tool: str
    query: str
    observation: str

    def to_dict(self) -> dict:
        return asdict(self)


def steps_of(trajectory: dict) -> list[Step]:
    """ReAct keeps `thought_i, tool_name_i, tool_args_i, observation_i`; flatten them into steps."""
    steps, index = [], 0
    while f"tool_name_{index}" in trajectory:
        args = trajectory.get(f"tool_args_{index}") or {}
        steps.append(Step(
            thought=str(trajectory.get(f"thought_{index}", "")),
            tool=str(trajectory[f"tool_name_{index}"]),
            query=str(args.get("query", "")) if isinstance(args, dict) else str(args),
            observation=str(trajectory.get(f"observation_{index}", "")),
        ))
        index += 1
    return steps


def search_count(steps: list[Step]) -> int:
    """The searches that count for difficulty: successful retrievals only. A step whose query is empty or
    whose observation is a tool error or a failed retrieval stays in the trajectory, but is not a search."""
    return sum(is_retrieval(step) for step in steps)


def is_retrieval(step: Step) -> bool:
    return (step.tool == SEARCH_TOOL and bool(step.query.strip()) and not step.observation.startswith(TOOL_ERROR)
            and failure_kind(step.observation) is None)


def passages_seen(steps: list[Step]) -> list[Passage]:
    """Every passage the searches returned, first sighting first, without repeats."""
    seen: dict[str, Passage] = {}
    for step in steps:
        if step.tool == SEARCH_TOOL:
            for passage in parse_passages(step.observation):
                seen.setdefault(passage.id, passage)
    return list(seen.values())


def render(steps: list[Step]) -> str:
    """A compact, readable trajectory for a reviser's prompt: each search and the titles it returned."""
    lines = []
    for number, step in enumerate(steps, start=1):
        if step.tool != SEARCH_TOOL:
            continue
        titles = ", ".join(f"{p.title} ({p.id})" for p in parse_passages(step.observation)) or "nothing"
        lines.append(f"search {number}: {step.query!r} -> {titles}")
    return "\n".join(lines) or "no searches"
