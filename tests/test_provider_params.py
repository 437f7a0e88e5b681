"""What each provider prefix the README lists really sends: a loopback capture server records the request body
(issue #23). The max-tokens field the server honours, temperature, seed, and response_format per adapter."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dspy
import pytest

from sage_dspy.lm.endpoint import KEYLESS_PLACEHOLDER, serves_openai_elsewhere
from sage_dspy.lm.max_tokens_field import _elsewhere
from sage_dspy.lm.roles import RoleLMs, build_lm
from sage_dspy.method.signatures import JudgeAnswer

ANSWER = {"reasoning": "same value", "is_correct": True}
CHAT_TEXT = "[[ ## reasoning ## ]]\nsame value\n\n[[ ## is_correct ## ]]\nTrue\n\n[[ ## completed ## ]]"


def reply_body(path: str, json_reply: bool) -> dict:
    """A minimal valid reply in the wire format the path belongs to."""
    text = json.dumps(ANSWER) if json_reply else CHAT_TEXT
    if path.endswith("/messages"):  # Anthropic
        return {"id": "m", "type": "message", "role": "assistant", "model": "x", "stop_reason": "end_turn",
                "content": [{"type": "text", "text": text}], "usage": {"input_tokens": 1, "output_tokens": 1}}
    if ":generateContent" in path:  # Gemini
        return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class Capture(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.seen: list[tuple[str, dict, dict]] = []
        super().__init__(("127.0.0.1", 0), CaptureHandler)


class CaptureHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Capture

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, dict(self.headers), body))
        wants_json = "response_format" in body or "output_config" in body or \
            "responseMimeType" in body.get("generationConfig", {})
        data = json.dumps(reply_body(self.path, wants_json)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def capture():
    server = Capture()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def judge_once(capture, model: str, api_base: str, adapter: str = "chat", **settings) -> tuple[str, dict, dict]:
    """One judge call through the project's own LM and adapter; the request as the server received it."""
    options = {"api_base": api_base, "max_tokens": 77, "seed": 3, "temperature": 0.5, **settings}
    lms = RoleLMs.from_specs({"judge": model}, {"judge": {"adapter": adapter}}, **options)
    with lms.use("judge"):
        result = dspy.Predict(JudgeAnswer)(question="q", gold_answer="1851", predicted_answer="1851")
    assert result.is_correct is True
    assert len(capture.seen) == 1
    return capture.seen[0]


def base(capture, path: str = "/v1") -> str:
    return f"http://127.0.0.1:{capture.server_address[1]}{path}"


# The OpenAI-compatible prefixes: the field each server honours is max_tokens (llama.cpp reads no other).
OPENAI_WIRE = ["openai/served-model", "hosted_vllm/served-model", "ollama_chat/llama3.1"]


@pytest.mark.parametrize("model", OPENAI_WIRE)
@pytest.mark.parametrize("adapter, response_format", [("chat", None), ("json", "json_object"),
                                                      ("json-schema", "json_schema")])
def test_openai_compatible_servers_get_max_tokens_temperature_seed_and_the_format(
        capture, monkeypatch, model, adapter, response_format):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # keyless local servers: nothing exported
    path, headers, body = judge_once(capture, model, base(capture), adapter)
    assert path == "/v1/chat/completions"
    assert body["max_tokens"] == 77 and "max_completion_tokens" not in body
    assert body["temperature"] == 0.5 and body["seed"] == 3
    assert (body.get("response_format") or {}).get("type") == response_format
    if response_format == "json_schema":
        schema = body["response_format"]["json_schema"]["schema"]
        assert set(schema["required"]) == set(JudgeAnswer.output_fields)
    assert headers["Authorization"].startswith("Bearer ")  # a placeholder DSPy or this project supplies


def test_openai_at_a_keyless_server_sends_a_placeholder_never_an_exported_key(capture, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _, headers, _ = judge_once(capture, "openai/served-model", base(capture))
    assert headers["Authorization"] == f"Bearer {KEYLESS_PLACEHOLDER}"
    capture.seen.clear()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-exported-key")
    _, headers, _ = judge_once(capture, "openai/served-model", base(capture))
    assert headers["Authorization"] == "Bearer sk-test-exported-key"


def test_openai_reasoning_models_keep_max_completion_tokens_behind_any_server(capture, monkeypatch):
    """o-series and gpt-5 refuse max_tokens (DSPy and LiteLLM send them max_completion_tokens everywhere)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    lm = build_lm("openai/gpt-5-mini", "generator", api_base=base(capture), max_tokens=16000)
    with dspy.context(lm=lm):
        lm("Reply with the word ok.", cache=False)
    body = capture.seen[0][2]
    assert body["max_completion_tokens"] == 16000 and "max_tokens" not in body


def test_openai_itself_is_left_to_dspy():
    """Only servers other than OpenAI's get max_tokens and the placeholder key."""
    assert not _elsewhere("https://api.openai.com/v1") and _elsewhere("http://127.0.0.1:8080/v1")
    assert not serves_openai_elsewhere("openai/gpt-4o-mini", {})  # no endpoint: OpenAI's own
    assert serves_openai_elsewhere("openai/x", {"api_base": "http://127.0.0.1:8080/v1"})
    assert not serves_openai_elsewhere("hosted_vllm/x", {"api_base": "http://127.0.0.1:8080/v1"})


def test_openai_on_dspys_litellm_path_sends_max_tokens_too(capture, monkeypatch):
    """OPENAI_API_BASE in the environment sends DSPy through LiteLLM: the same fields arrive."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    monkeypatch.setenv("OPENAI_API_BASE", base(capture))
    _, _, body = judge_once(capture, "openai/served-model", None, "json")
    assert body["max_tokens"] == 77 and "max_completion_tokens" not in body
    assert body["temperature"] == 0.5 and body["seed"] == 3 and body["response_format"] == {"type": "json_object"}


def test_anthropic_gets_max_tokens_temperature_and_its_own_schema_field(capture, monkeypatch):
    """Anthropic's API has no seed (the client drops it); a schema goes as output_config.format."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-secret")
    path, headers, body = judge_once(capture, "anthropic/claude-3-5-haiku-latest", base(capture, ""),
                                     "json-schema")
    assert path.endswith("/messages") and headers["x-api-key"] == "sk-ant-test-not-a-secret"
    assert body["max_tokens"] == 77 and body["temperature"] == 0.5 and "seed" not in body
    assert body["output_config"]["format"]["type"] == "json_schema"


def test_gemini_gets_its_generation_config(capture, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "test-not-a-secret")
    path, _, body = judge_once(capture, "gemini/gemini-2.0-flash", base(capture, ""), "json")
    config = body["generationConfig"]
    assert path.endswith("/models/gemini-2.0-flash:generateContent")
    assert config["maxOutputTokens"] == 77 and config["temperature"] == 0.5 and config["seed"] == 3
    assert config["responseMimeType"] == "application/json"
