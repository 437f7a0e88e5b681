"""The loop and its parts with scripted LMs, one per role, over a tiny real bm25s index.

Why not DummyLM: the solver runs each attempt on `lm.copy(rollout_id=...)`. DummyLM copies are shallow, so
they do share its answer iterator, but each copy keeps its own `history`, so the original LM never shows the
attempts' requests. A small engine per role serves its replies in order, records every request with the
rollout id of the LM that sent it, and fails loudly when its script runs out.
"""

import json
import re
from dataclasses import dataclass

import dspy
import pytest
from dspy.lm15 import Message, Response, TextPart, Usage

from sage_dspy.programs import generator_only, resample, sage
from sage_dspy.method.feedback import Attempt
from sage_dspy.method.judge import AnswerJudge
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.search.tool import SearchTool
from sage_dspy.method.solver import Solver


# ---------------------------------------------------------------------------------------------- scripted LMs

class ScriptExhausted(AssertionError):
    pass


@dataclass(frozen=True)
class Call:
    system: str
    user: str
    rollout_id: int | None
    temperature: float | None

    def has_input(self, name: str) -> bool:
        return f"[[ ## {name} ## ]]" in self.user

    def field(self, name: str) -> str:
        """The value of one input section of the user message."""
        user = self.user.split("\n\nRespond with the corresponding output fields")[0]
        match = re.search(rf"\[\[ ## {name} ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", user, re.S)
        return match.group(1).strip() if match else ""

    def asks_for(self, name: str) -> bool:
        return f"`{name}`" in self.system.partition("Your output fields are:")[2]


class ScriptedEngine:
    """complete(Request) -> Response: the next scripted reply, written in the chat adapter's format."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls: list[Call] = []

    def complete(self, request):
        system = request.system if isinstance(request.system, str) else ""
        lm = dspy.settings.lm  # the LM that sent this request: a rollout copy during the solver's attempts
        self.calls.append(Call(system, request.messages[-1].text or "", lm.kwargs.get("rollout_id"),
                               request.config.temperature))
        if not self.replies:
            raise ScriptExhausted(f"{request.model}: no scripted reply left for call {len(self.calls)}")
        return Response(id=None, model=request.model, message=Message.assistant([TextPart(chat(self.replies.pop(0)))]),
                        finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=1))


def chat(fields: dict) -> str:
    sections = [f"[[ ## {name} ## ]]\n{value if isinstance(value, str) else json.dumps(value)}"
                for name, value in fields.items()]
    return "\n\n".join([*sections, "[[ ## completed ## ]]"])


def scripted(role: str, replies=()) -> tuple[dspy.LM, ScriptedEngine]:
    engine = ScriptedEngine(replies)
    return dspy.LM(f"scripted/{role}", engine=engine, cache=False), engine


# ---------------------------------------------------------------------------------------------- replies

def act(tool: str, thought: str = "next", **args) -> dict:
    return {"next_thought": thought, "next_tool_name": tool, "next_tool_args": args}


def agent(queries, **final) -> list[dict]:
    """A ReAct run: one search per query, finish, then the extract step's fields."""
    return [*(act("search", query=q) for q in queries), act("finish"), {"reasoning": "read it", **final}]


def proposal(queries, question, answer, steps) -> list[dict]:
    return agent(queries, question=question, answer=answer, answering_steps=steps)


def attempt(queries, answer) -> list[dict]:
    return agent(queries, answer=answer)


def revision(question, answer, steps) -> dict:
    return {"reasoning": "rewrite", "revised_question": question, "revised_answer": answer, "revised_steps": steps}


Q0 = "Where did the designer of Harbor Bridge study?"
STEPS0 = ["Search Harbor Bridge (id: p-bridge)", "Search Ada Marlowe (id: p-ada)"]
Q1 = "Where did the designer of the bridge that replaced Lune Ferry study?"
STEPS1 = ["Search Lune Ferry (id: p-ferry)", *STEPS0]
GENERATED = proposal(["Harbor Bridge", "Ada Marlowe"], Q0, "Corvel Institute", STEPS0)
RIGHT_2 = attempt(["Harbor Bridge", "Ada Marlowe"], "Corvel Institute")  # 2 searches, exact match
RIGHT_1 = attempt(["Ada Marlowe studied"], "the Corvel Institute")  # 1 search, exact after normalising
WRONG = attempt(["founded studied"], "Brenna College")  # needs the LM judge


@dataclass
class Roles:
    engines: dict[str, ScriptedEngine]
    lms: RoleLMs

    def __getattr__(self, role):
        return self.engines[role]

    def all_replies_used(self) -> bool:
        return all(not engine.replies for engine in self.engines.values())


def roles(generator=(), solver=(), judge=(), reviser=()) -> Roles:
    built = {name: scripted(name, replies) for name, replies in
             (("generator", generator), ("solver", solver), ("judge", judge), ("reviser", reviser))}
    return Roles({name: engine for name, (_, engine) in built.items()},
                 RoleLMs({name: lm for name, (lm, _) in built.items()}))


@pytest.fixture(autouse=True)
def strict_chat_adapter():
    """No JSON fallback: a reply that fails to parse must not silently consume the next scripted reply."""
    with dspy.context(adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
        yield


@pytest.fixture
def run(tiny_index):
    def go(recipe, lms: Roles, *, target=2, k=2, max_rounds=3, answer_type="entity", protocol="lean"):
        program = recipe.build(SearchTool(tiny_index), k=k, max_rounds=max_rounds, lms=lms.lms).checking(protocol)
        return program(seed=tiny_index.get("p-bridge"), target_searches=target, answer_type=answer_type)
    return go


# ---------------------------------------------------------------------------------------------- the loop

def test_accepted_in_round_zero_never_calls_the_reviser(run):
    lms = roles(generator=GENERATED, solver=RIGHT_2 * 2)
    result = run(sage, lms, target=2, k=2)
    assert len(result.rounds) == 1
    assert result.verdict.kind == "accepted" and result.verdict.searches == 2
    assert result.pair.question == Q0 and result.pair.origin == "generated"
    assert result.pair.cited_ids == ["p-bridge", "p-ada"]
    assert [s.query for s in result.pair.trajectory] == ["Harbor Bridge", "Ada Marlowe", ""]
    assert lms.reviser.calls == [] and lms.judge.calls == []  # exact matches never reach the LM judge
    assert lms.all_replies_used()


def test_too_easy_calls_harden_and_the_next_round_uses_the_revised_pair(run, tiny_index):
    lms = roles(generator=GENERATED, solver=RIGHT_1 + RIGHT_2 * 2,
                reviser=[revision(Q1, "Corvel Institute", STEPS1)])
    result = run(sage, lms, target=2, k=2)

    assert [r.verdict.kind for r in result.rounds] == ["too_easy", "accepted"]
    assert len(result.rounds[0].attempts) == 1  # a correct attempt under the target settled it: no second one
    [harden] = lms.reviser.calls
    assert harden.has_input("why_too_easy") and not harden.has_input("why_incorrect")
    assert harden.asks_for("revised_question")
    assert harden.field("question") == Q0 and harden.field("target_searches") == "2"
    assert "1 search(es)" in harden.field("why_too_easy") and "'Ada Marlowe studied'" in harden.field("why_too_easy")
    # the evidence is the seed plus every passage either agent retrieved, each once
    evidence = harden.field("evidence")
    by_generator = {h.passage.id for q in ("Harbor Bridge", "Ada Marlowe") for h in tiny_index.search(q)}
    by_solver = {h.passage.id for h in tiny_index.search("Ada Marlowe studied")}
    assert by_solver - by_generator  # the solver saw something the generator did not
    cited = re.findall(r"^(.*) \(id: ([^)]+)\)$", evidence, re.M)
    assert cited[0] == ("Harbor Bridge", "p-bridge")
    assert len(cited) == len(set(cited)) and {i for _, i in cited} == by_generator | by_solver | {"p-bridge"}
    assert "Respond with" not in evidence
    assert "'Harbor Bridge'" in harden.field("generator_trajectory")

    second = result.rounds[1]
    assert second.pair.question == Q1 and second.pair.origin == "revised:too_easy"
    assert second.pair.steps == STEPS1 and second.pair.answer_type == "entity"
    assert result.pair is second.pair
    asked = [call.field("question") for call in lms.solver.calls if call.has_input("question")]
    assert set(asked[:3]) == {Q0} and set(asked[3:]) == {Q1}
    assert len(lms.generator.calls) == 4  # the generator ran once
    assert lms.all_replies_used()


def test_the_paper_protocol_runs_every_attempt_and_has_the_lm_judge_rule_on_each(run):
    lms = roles(generator=GENERATED, solver=RIGHT_1 * 2 + RIGHT_2 * 2, judge=[{"is_correct": True}] * 4,
                reviser=[revision(Q1, "Corvel Institute", STEPS1)])
    result = run(sage, lms, target=2, k=2, protocol="paper")
    assert [r.verdict.kind for r in result.rounds] == ["too_easy", "accepted"]
    assert [len(r.attempts) for r in result.rounds] == [2, 2]
    assert [a.judged_by for r in result.rounds for a in r.attempts] == ["lm"] * 4
    assert len(lms.judge.calls) == 4
    assert lms.all_replies_used()


def test_incorrect_calls_repair_and_the_lm_judge(run):
    lms = roles(generator=GENERATED, solver=WRONG * 2 + RIGHT_2 * 2,
                judge=[{"is_correct": False}] * 2,
                reviser=[revision(Q1, "Corvel Institute", STEPS1)])
    result = run(sage, lms, target=2, k=2)

    assert [r.verdict.kind for r in result.rounds] == ["incorrect", "accepted"]
    assert [a.judged_by for a in result.rounds[0].attempts] == ["lm", "lm"]
    assert [a.judged_by for a in result.rounds[1].attempts] == ["exact", "exact"]
    [repair] = lms.reviser.calls
    assert repair.has_input("why_incorrect") and not repair.has_input("why_too_easy")
    assert "'Brenna College'" in repair.field("why_incorrect")
    assert "'Corvel Institute'" in repair.field("why_incorrect")
    assert result.pair.origin == "revised:incorrect"
    assert [call.field("predicted_answer") for call in lms.judge.calls] == ["Brenna College"] * 2
    assert lms.all_replies_used()


@pytest.mark.parametrize("max_rounds", [0, 1, 2])
def test_max_rounds_is_honoured_when_every_round_fails(run, max_rounds):
    k = 2
    lms = roles(generator=GENERATED, solver=WRONG * k * (max_rounds + 1),
                judge=[{"is_correct": False}] * k * (max_rounds + 1),
                reviser=[revision(f"{Q1} ({n})", "Corvel Institute", STEPS1) for n in range(max_rounds)])
    result = run(sage, lms, target=2, k=k, max_rounds=max_rounds)
    assert len(result.rounds) == max_rounds + 1
    assert [r.index for r in result.rounds] == list(range(max_rounds + 1))
    assert len(lms.reviser.calls) == max_rounds
    assert result.verdict.kind == "incorrect"
    assert lms.all_replies_used()


def test_generator_only_runs_one_round_and_never_revises(run):
    lms = roles(generator=GENERATED, solver=WRONG * 2, judge=[{"is_correct": False}] * 2,
                reviser=[revision(Q1, "Corvel Institute", STEPS1)])
    result = run(generator_only, lms, target=2, k=2, max_rounds=3)
    assert len(result.rounds) == 1 and result.verdict.kind == "incorrect"
    assert lms.reviser.calls == []
    assert len(lms.generator.calls) == 4


def test_resample_draws_a_fresh_generator_pair_each_round_without_feedback(run):
    fresh = proposal(["Lune Ferry", "Harbor Bridge", "Ada Marlowe"], Q1, "Corvel Institute", STEPS1)
    lms = roles(generator=GENERATED + fresh, solver=RIGHT_1 + attempt(["a", "b", "c"], "Corvel Institute") * 2,
                reviser=[revision("never", "never", [])])
    result = run(resample, lms, target=2, k=2, max_rounds=3)

    assert [r.verdict.kind for r in result.rounds] == ["too_easy", "accepted"]
    assert [r.pair.origin for r in result.rounds] == ["generated", "resampled"]
    assert result.pair.question == Q1
    assert [s.query for s in result.pair.trajectory][:3] == ["Lune Ferry", "Harbor Bridge", "Ada Marlowe"]
    assert lms.reviser.calls == []
    assert len(lms.generator.calls) == 4 + 5  # two runs: 2 searches + finish + extract, then 3 + 2
    for call in lms.generator.calls:
        assert call.field("seed_passage").startswith("Harbor Bridge (id: p-bridge)")
        for feedback in ("why_too_easy", "why_incorrect", "evidence", "solver_trajectories"):
            assert not call.has_input(feedback)
    # the resample is a new rollout of the generator, so a real LM samples a new pair
    assert {c.rollout_id for c in lms.generator.calls[:4]} == {None}
    assert {c.rollout_id for c in lms.generator.calls[4:]} == {1}


# ---------------------------------------------------------------------------------------------- the solver

@pytest.fixture
def solver_lm():
    def make(replies, temperature=None):
        engine = ScriptedEngine(replies)
        return dspy.LM("scripted/solver", engine=engine, cache=False, temperature=temperature), engine
    return make


def test_solver_records_the_trajectory_and_counts_each_search(tiny_index, solver_lm):
    tool = SearchTool(tiny_index)
    lm, engine = solver_lm(attempt(["Harbor Bridge", "Ada Marlowe", "Corvel Institute"], "1851")
                           + attempt([], "no idea"))
    with dspy.context(lm=lm):
        first, second = Solver(tool).attempt("When was the designer's school founded?", k=2)
    assert tool.calls == 3
    assert first.searches == 3 and first.answer == "1851" and first.error is None and not first.correct
    assert [s.tool for s in first.steps] == ["search", "search", "search", "finish"]
    assert [s.query for s in first.steps[:3]] == ["Harbor Bridge", "Ada Marlowe", "Corvel Institute"]
    assert "[1] Harbor Bridge (id: p-bridge)" in first.steps[0].observation
    assert "Corvel Institute (id: p-corvel)" in first.steps[2].observation
    assert second.searches == 0 and second.answer == "no idea" and [s.tool for s in second.steps] == ["finish"]
    assert not engine.replies


class BrokenIndex:
    def search(self, query, k=3):
        raise RuntimeError("index is offline")


def test_a_failing_search_becomes_an_observation_not_a_crash_nor_a_counted_search(solver_lm):
    tool = SearchTool(BrokenIndex())
    lm, engine = solver_lm(attempt(["Harbor Bridge", "Harbor Bridge designer"], "unknown"))
    with dspy.context(lm=lm):
        [result] = Solver(tool).attempt("Who designed Harbor Bridge?", k=1)
    assert result.error is None and result.answer == "unknown"
    assert tool.calls == 2 and result.searches == 0  # recorded in the trajectory, never counted (issue 23)
    assert "Execution error in search" in result.steps[0].observation
    assert "index is offline" in result.steps[0].observation
    # the agent saw the error in its trajectory when it chose its next step
    assert "index is offline" in engine.calls[1].user


def test_an_lm_failure_costs_the_attempt_not_the_run(tiny_index, solver_lm):
    lm, _ = solver_lm([])  # every call raises ScriptExhausted
    with dspy.context(lm=lm):
        results = Solver(SearchTool(tiny_index)).attempt("Who designed Harbor Bridge?", k=3)
    assert len(results) == 3
    assert all(r.error and "no scripted reply left" in r.error and not r.correct and r.searches == 0 for r in results)


@pytest.mark.parametrize("k, first_rollout", [(3, 0), (2, 5)])
def test_k_attempts_run_on_distinct_rollouts(tiny_index, solver_lm, k, first_rollout):
    lm, engine = solver_lm(attempt(["Harbor Bridge"], "Ada Marlowe") * k, temperature=0.0)
    with dspy.context(lm=lm):
        results = Solver(SearchTool(tiny_index)).attempt("Who designed Harbor Bridge?", k=k, first_rollout=first_rollout)
    assert len(results) == k
    per_call = [c.rollout_id for c in engine.calls]
    assert per_call == [r for r in range(first_rollout, first_rollout + k) for _ in range(3)]  # 3 calls per attempt
    assert {c.temperature for c in engine.calls} == {1.0}  # rollout ids only count at a non-zero temperature
    assert lm.kwargs["temperature"] == 0.0  # the configured LM itself is left alone


def test_an_empty_question_gives_k_failed_attempts_without_calling_the_lm(tiny_index, solver_lm):
    lm, engine = solver_lm([])
    with dspy.context(lm=lm):
        results = Solver(SearchTool(tiny_index)).attempt("   ", k=2)
    assert [r.error for r in results] == ["empty question"] * 2
    assert engine.calls == []


# ---------------------------------------------------------------------------------------------- the judge

# ---------------------------------------------------------------------------------------------- grounding

def test_an_accepted_answer_stated_in_a_retrieved_passage_is_grounded_without_a_call(run):
    lms = roles(generator=GENERATED, solver=RIGHT_2 * 2)
    result = run(sage, lms, target=2, k=2)
    assert result.grounding.passage_id == "p-ada" and result.grounding.method == "contained"
    assert result.grounding.generator_passages >= 2
    assert lms.judge.calls == []


@pytest.mark.parametrize("cited, passage_id", [("p-corvel", "p-corvel"), ("p-nowhere", "")])
def test_an_answer_no_passage_contains_goes_to_the_judge_which_must_cite_a_retrieved_passage(run, cited,
                                                                                             passage_id):
    """"Tobias Wren" is stated in p-corvel (retrieved by the solver here), written "T. Wren" in the pair."""
    pair = proposal(["Harbor Bridge", "Ada Marlowe"], Q0, "T. Wren", STEPS0)
    right = attempt(["Harbor Bridge", "Corvel Institute rector"], "T. Wren")
    lms = roles(generator=pair, solver=right * 2, judge=[{"supporting_passage_id": cited}])
    result = run(sage, lms, target=2, k=2)
    assert result.verdict.accepted
    assert result.grounding.passage_id == passage_id and result.grounding.method == ("lm" if passage_id else "none")
    [call] = lms.judge.calls
    assert call.asks_for("supporting_passage_id") and call.field("answer") == "T. Wren"
    assert "(id: p-corvel)" in call.field("passages") and "(id: p-ada)" in call.field("passages")


def test_a_generator_that_never_retrieved_a_passage_is_not_grounded_and_costs_no_call(run):
    """Issue 23's w099: the generator's only step failed, the solver 'searched' (its attempts are scripted
    right here), the judge agreed: no passage of the generator's is evidence, so the pair is dropped."""
    pair = [act("finish", type="x"), {"reasoning": "?", "question": Q0, "answer": "Corvel Institute",
                                      "answering_steps": []}]
    lms = roles(generator=pair, solver=RIGHT_2 * 2)
    result = run(sage, lms, target=2, k=2)
    assert result.verdict.accepted and result.grounding.generator_passages == 0
    assert result.grounding.passage_id == "" and lms.judge.calls == []


@pytest.mark.parametrize("gold, predicted, aliases", [
    ("Corvel Institute", "corvel institute", ()),
    ("Corvel Institute", "The Corvel Institute.", ()),
    ("3,400", "3400", ()),
    ("Ada Marlowe", "A. Marlowe", ("A. Marlowe",)),
])
def test_an_exact_normalised_match_never_calls_the_judge_lm(gold, predicted, aliases):
    lm, engine = scripted("judge")
    with dspy.context(lm=lm):
        graded = AnswerJudge().grade("q?", gold, Attempt(predicted, 2, False), aliases=aliases)
    assert graded.correct and graded.judged_by == "exact"
    assert engine.calls == []


@pytest.mark.parametrize("verdict", [True, False])
def test_a_non_matching_answer_goes_to_the_judge_lm(verdict):
    lm, engine = scripted("judge", [{"is_correct": verdict}])
    with dspy.context(lm=lm):
        graded = AnswerJudge().grade("When was it founded?", "12 March 1890", Attempt("March 12, 1890", 2, False))
    assert graded.correct is verdict and graded.judged_by == "lm"
    [call] = engine.calls
    assert call.field("question") == "When was it founded?"
    assert call.field("gold_answer") == "12 March 1890" and call.field("predicted_answer") == "March 12, 1890"
    assert call.asks_for("is_correct")


@pytest.mark.parametrize("attempt_in", [Attempt("", 1, False), Attempt("x", 1, False, error="TimeoutError")])
def test_empty_or_failed_attempts_are_not_sent_to_the_judge(attempt_in):
    lm, engine = scripted("judge")
    with dspy.context(lm=lm):
        graded = AnswerJudge().grade("q?", "gold", attempt_in)
    assert not graded.correct and engine.calls == []
    assert graded.error == attempt_in.error


def test_a_judge_failure_marks_the_attempt_instead_of_raising():
    lm, _ = scripted("judge")  # no replies: the call raises
    with dspy.context(lm=lm):
        graded = AnswerJudge().grade("q?", "gold", Attempt("other", 1, False))
    assert not graded.correct and graded.error.startswith("judge failed:") and "no scripted reply left" in graded.error
    assert graded.failed_in == "judge" and graded.error_kind  # a judge failure is told apart by its field
