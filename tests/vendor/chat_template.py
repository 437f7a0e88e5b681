# How transformers renders a chat template (`transformers.utils.chat_template_utils._compile_jinja_template`
# and `render_jinja_template`, as TRL's SFTTrainer calls it through `apply_chat_template`): a sandboxed jinja2
# environment with trim_blocks and lstrip_blocks, loop controls, a `tojson` filter that keeps non-ASCII text,
# `raise_exception`, and the `{% generation %}` block TRL's training templates put around what the model is
# trained to write (assistant-only loss). transformers is not a dependency of sage-dspy; this is the part of it
# the tests need. The template itself is TRL's, unedited: trl/chat_templates/qwen2_5_training.jinja at commit
# 7f1ec8cf0d5400c37f108be7ac08ee0c76759861 (Apache-2.0), in trl_qwen2_5_training.jinja beside this file.

import json
from pathlib import Path

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

QWEN2_5_TRAINING = Path(__file__).with_name("trl_qwen2_5_training.jinja")


class _Generation(Extension):
    """`{% generation %}...{% endgeneration %}`: renders its body and remembers it as trained text."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation", []), [], [], body).set_lineno(lineno)

    def _generation(self, caller):
        text = caller()
        self.environment.generated.append(text)
        return text


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise(message):
    raise jinja2.exceptions.TemplateError(message)


def render(messages: list[dict], tools: list[dict] | None = None,
           template: Path = QWEN2_5_TRAINING) -> tuple[str, list[str]]:
    """The rendered conversation, and the parts inside generation blocks (what SFT trains on)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.generated = []
    text = env.from_string(template.read_text(encoding="utf-8")).render(
        messages=messages, tools=tools, add_generation_prompt=False)
    return text, list(env.generated)
