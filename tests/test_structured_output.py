"""--adapter chat|json|json-schema: what each sends as response_format, the offline server reading and enforcing
it like a real server, and each adapter run end to end on that wire (issue #23)."""

import json
import urllib.error
import urllib.request

import dspy
import jsonschema
import pytest
from dspy.utils.exceptions import AdapterParseError
from typer.testing import CliRunner

from sage_dspy.cli.app import app
from sage_dspy.lm.adapter import ADAPTERS, FAILED_REPLIES, ChatAdapter
from sage_dspy.lm.choice import adapter_named
from sage_dspy.lm.react import ReAct
from sage_dspy.lm.roles import RoleLMs
from sage_dspy.lm.structured import JSONAdapter, JSONSchemaAdapter, fields_format, step_format
from sage_dspy.method.signatures import JudgeAnswer
from sage_dspy.offline.http import ServerConfig
from sage_dspy.search.tool import SearchTool
from server_fixture import in_process_server

SEARCH_ARGS = {"query": {"type": "string"}}
STEP = {"search": SEARCH_ARGS, "finish": {}}


@pytest.fixture
def server():
    with in_process_server(ServerConfig(idle_exit=120)) as running:
        yield running


def api_base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def post(server, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(api_base(server) + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_adapter_names_are_one_constant_and_each_builds():
    assert ADAPTERS == ("chat", "json", "json-schema")
    assert [type(adapter_named(name)) for name in ADAPTERS] == [ChatAdapter, JSONAdapter, JSONSchemaAdapter]
    assert type(adapter_named(None)) is ChatAdapter


# ------------------------------------------------------------------ the schemas


def test_step_schema_ties_each_tool_name_to_its_arguments():
    schema = step_format(STEP)["json_schema"]["schema"]
    valid = [{"next_thought": "t", "next_tool_name": "search", "next_tool_args": {"query": "Harbor Bridge"}},
             {"next_thought": "t", "next_tool_name": "finish", "next_tool_args": {}}]
    invalid = [{"next_thought": "t", "next_tool_name": "search", "next_tool_args": {"query": ""}},  # empty query
               {"next_thought": "t", "next_tool_name": "search", "next_tool_args": {}},  # no query
               {"next_thought": "t", "next_tool_name": "search", "next_tool_args": {"type": "x"}},  # wrong argument
               {"next_thought": "t", "next_tool_name": "finish", "next_tool_args": {"query": "x"}},  # finish's are none
               {"next_thought": "t", "next_tool_name": "lookup", "next_tool_args": {}},  # no such tool
               {"next_tool_name": "finish", "next_tool_args": {}}]  # a field missing
    validator = jsonschema.Draft202012Validator(schema)
    assert [validator.is_valid(reply) for reply in valid] == [True, True]
    assert [validator.is_valid(reply) for reply in invalid] == [False] * len(invalid)


def test_hosted_providers_get_one_strict_object_per_step():
    """OpenAI's strict structured outputs refuse a top-level anyOf and minLength: the step is one object, the
    names an enum, every argument required."""
    form = step_format(STEP, tied=False)["json_schema"]
    schema = form["schema"]
    assert form["strict"] is True and schema["type"] == "object" and "anyOf" not in schema
    assert schema["properties"]["next_tool_name"]["enum"] == ["search", "finish"]
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"next_thought": "t", "next_tool_name": "search", "next_tool_args": {"query": "x"}})
    assert not validator.is_valid({"next_thought": "t", "next_tool_name": "search", "next_tool_args": {"q": "x"}})
    assert not validator.is_valid({"next_thought": "t", "next_tool_name": "lookup", "next_tool_args": {}})
    assert "minLength" not in json.dumps(schema)


@pytest.mark.parametrize("model, api_base, own", [
    ("hosted_vllm/m", "http://127.0.0.1:8000/v1", True), ("ollama_chat/llama3.1", None, True),
    ("openai/served", "http://127.0.0.1:8080/v1", True), ("openai/gpt-4o-mini", None, False),
    ("anthropic/claude-3-5-haiku-latest", None, False), ("gemini/gemini-2.0-flash", None, False)])
def test_which_servers_get_the_tied_schema(monkeypatch, model, api_base, own):
    from sage_dspy.lm.roles import build_lm
    from sage_dspy.lm.structured import own_server

    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert own_server(build_lm(model, "judge", api_base=api_base)) is own


def test_other_signatures_get_a_schema_of_their_output_fields():
    form = fields_format(JudgeAnswer)
    assert form["type"] == "json_schema" and form["json_schema"]["name"] == "JudgeAnswer"
    schema = form["json_schema"]["schema"]
    assert set(schema["required"]) == set(JudgeAnswer.output_fields)
    assert fields_format(JudgeAnswer) is form  # built once per signature


def test_the_react_step_is_asked_with_the_agents_own_tools(tiny_index):
    """What the json-schema adapter sends for a step of our ReAct: search's query and finish's no arguments."""
    sent = []

    class Recorder(JSONSchemaAdapter):
        def response_format(self, signature, to_own_server=True):
            sent.append(super().response_format(signature, True))  # as to a server of one's own
            return sent[-1]

    agent = ReAct("question -> answer", tools=[SearchTool(tiny_index)], max_iters=1)
    lm = dspy.utils.DummyLM([{"next_thought": "t", "next_tool_name": "finish", "next_tool_args": {}},
                             {"reasoning": "r", "answer": "a"}], adapter=dspy.JSONAdapter())
    with dspy.context(lm=lm, adapter=Recorder()):
        agent(question="Who designed Harbor Bridge?")
    step = sent[0]["json_schema"]["schema"]["anyOf"]
    by_tool = {branch["properties"]["next_tool_name"]["enum"][0]: branch["properties"]["next_tool_args"]
               for branch in step}
    assert by_tool["search"]["required"] == ["query"] and by_tool["search"]["properties"]["query"]["minLength"] == 1
    assert by_tool["finish"]["properties"] == {}
    assert sent[1]["type"] == "json_schema" and "answer" in sent[1]["json_schema"]["schema"]["properties"]


# ------------------------------------------------------------------ the offline server reads response_format


@pytest.mark.parametrize("response_format, reason", [
    ("json", "response_format must be an object"),
    ({"type": "xml"}, "type is one of text, json_object, json_schema"),
    ({"type": "json_schema"}, "needs json_schema: {name, schema}"),
    ({"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}, "needs json_schema: {name, schema}"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": []}}, "must be a JSON schema object"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objekt"}}}, "not a valid JSON schema"),
    ({"type": "json_object", "schema": {"required": "answer"}}, "not a valid JSON schema"),
])
def test_a_malformed_response_format_is_a_400_as_on_a_real_server(server, response_format, reason):
    status, body = post(server, {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                 "response_format": response_format})
    assert status == 400 and reason in body["error"]["message"]
    assert server.stats.served == 0 and server.stats.bad_requests == 1


def test_a_schema_reply_conforms_or_is_a_visible_server_error(server):
    judge = dspy.JSONAdapter().format(JudgeAnswer, [], {"question": "q", "gold_answer": "1851",
                                                        "predicted_answer": "1851"})
    asked = {"model": "m", "messages": judge}
    status, body = post(server, {**asked, "response_format": fields_format(JudgeAnswer)})
    assert status == 200
    reply = json.loads(body["choices"][0]["message"]["content"])
    jsonschema.validate(reply, fields_format(JudgeAnswer)["json_schema"]["schema"])
    impossible = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]}}}
    status, body = post(server, {**asked, "response_format": impossible})
    assert status == 500 and "does not conform to the request's schema" in body["error"]["message"]


# ------------------------------------------------------------------ each adapter on the wire, end to end


def generate(workdir, server, adapter: str, *extra, folder: str = "") -> dict:
    out = workdir / (folder or f"run-{adapter}")
    args = ["generate", "--lm", "openai/sage-offline", "--api-base", api_base(server), "--lm-seed", "0",
            "--seeds", "3", "--k", "2", "--rounds", "1", "--out", str(out), "--no-track", *extra]
    if adapter:
        args += ["--adapter", adapter]
    # no OPENAI_API_KEY: the README's offline-server command works as written
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", "OPENAI_API_KEY": ""})
    assert result.exit_code == 0, result.output
    return {"dataset": (out / "dataset.jsonl").read_text(encoding="utf-8"),
            "config": json.loads((out / "config.json").read_text(encoding="utf-8")),
            "records": [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]}


def test_each_adapter_runs_end_to_end_on_the_wire_with_the_same_kept_pairs(workdir, server):
    """The offline LM answers each format from the same rules, so the kept pairs are the chat adapter's."""
    runs = {}
    for adapter in ADAPTERS:
        before = dict(server.stats.response_formats)
        runs[adapter] = generate(workdir, server, adapter)
        sent = {kind: count - before.get(kind, 0) for kind, count in server.stats.response_formats.items()}
        runs[adapter]["sent"] = {kind: count for kind, count in sent.items() if count}
    assert runs["chat"]["dataset"].strip()
    assert runs["json"]["dataset"] == runs["chat"]["dataset"] == runs["json-schema"]["dataset"]
    assert set(runs["chat"]["sent"]) == {"none"}
    # every call through the adapter (steps, extracts, judge, reviser), and the one preflight call of the LM
    # the roles share
    assert set(runs["json"]["sent"]) == {"json_object", "none"} and runs["json"]["sent"]["none"] == 1
    assert set(runs["json-schema"]["sent"]) == {"json_schema", "none"} and runs["json-schema"]["sent"]["none"] == 1
    assert "adapter" not in runs["chat"]["config"]["lm_options"]
    assert runs["json-schema"]["config"]["lm_options"]["adapter"] == "json-schema"
    assert server.stats.bad_requests == 0 and server.stats.served == server.stats.completions


def test_an_explicit_chat_adapter_is_the_run_without_one(workdir, server):
    """--adapter chat is the default: its folder resumes the run made without the option (and the reverse)."""
    first = generate(workdir, server, "", folder="one-run")
    served = server.stats.served
    again = generate(workdir, server, "chat", folder="one-run")  # resumed, not refused as another run
    assert again["config"] == first["config"] and again["dataset"] == first["dataset"]
    assert server.stats.served == served  # every seed was done: not even a preflight call


def test_the_adapter_is_a_setting_per_role(monkeypatch):
    from sage_dspy.lm.settings import load_settings

    monkeypatch.setenv("SAGE_ADAPTER", "json")
    monkeypatch.setenv("SAGE_JUDGE_ADAPTER", "chat")
    settings = load_settings(None, __import__("os").environ)
    shared, per_role = settings.split(("generator", "solver", "judge", "reviser"))
    lms = RoleLMs.from_specs(settings.lms(("generator", "solver", "judge", "reviser")), per_role, **shared)
    assert lms.adapters == {"generator": "json", "solver": "json", "judge": "chat", "reviser": "json"}
    with lms.use("solver"):
        assert type(dspy.settings.adapter) is JSONAdapter
    with lms.use("judge"):
        assert type(dspy.settings.adapter) is ChatAdapter


# ------------------------------------------------------------------ parse retries stay under every adapter


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_parse_retries_and_every_failed_reply_are_kept_under_each_adapter(adapter):
    replies = iter(f"not a reply {n}" for n in range(20))

    class Garbage:
        def complete(self, request):
            from dspy.lm15 import Message, Response, TextPart, Usage
            return Response(id=None, model=request.model, message=Message.assistant([TextPart(next(replies))]),
                            finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=1))

    from sage_dspy.lm.inflight import SageLM

    lm = SageLM("garbage/model", engine=Garbage(), cache=False, parse_retries=2)
    with dspy.context(lm=lm, adapter=adapter_named(adapter)), pytest.raises(AdapterParseError) as error:
        dspy.Predict(JudgeAnswer)(question="q", gold_answer="a", predicted_answer="a")
    kept = getattr(error.value, FAILED_REPLIES)
    # chat: each of the 3 tries is a chat reply and its JSON fallback's; json adapters: one reply a try
    per_try = 2 if adapter == "chat" else 1
    assert kept == [f"not a reply {n}" for n in range(3 * per_try)]


@pytest.mark.parametrize("name", ADAPTERS)
def test_each_adapter_fires_dspys_format_and_parse_callbacks_once_a_call(name):
    """DSPy wraps `format` and `parse` with its callbacks in every subclass; inherited already wrapped, they fired
    once per adapter level (3 and 4 times under json and json-schema), each an MLflow span."""
    from dspy.utils.callback import BaseCallback

    class Counting(BaseCallback):
        def __init__(self):
            self.formats = self.parses = 0

        def on_adapter_format_start(self, call_id, instance, inputs):
            self.formats += 1

        def on_adapter_parse_start(self, call_id, instance, inputs):
            self.parses += 1

    counting = Counting()
    adapter = adapter_named(name)
    with dspy.context(callbacks=[counting]):
        adapter.format(JudgeAnswer, [], dict.fromkeys(JudgeAnswer.input_fields, "x"))
        with pytest.raises(AdapterParseError):
            adapter.parse(JudgeAnswer, "no fields here")
    assert (counting.formats, counting.parses) == (1, 1)
