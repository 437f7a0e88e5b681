"""What the commands share: options, the parsing and checks of what was typed, and the one error handler."""

import os
import re
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import click
import typer
from rich.markup import escape
from typer.core import TyperGroup

from sage_dspy.breaker import BreakerLimits
from sage_dspy.cli.printing import err
from sage_dspy.errors import SageError
from sage_dspy.redact import redact_text
from sage_dspy.lm.adapter import ADAPTERS
from sage_dspy.lm.settings import Layer, LMSettings, load_settings
from sage_dspy.method.loop import PROTOCOLS
from sage_dspy.programs import RECIPES

try:  # Typer 0.29 vendors its own Click, whose exceptions are not click's
    from typer._click.exceptions import UsageError as TyperUsageError
except ImportError:  # a Typer that uses click itself
    TyperUsageError = click.UsageError
USAGE_ERRORS = (TyperUsageError, click.UsageError)


def fail(message: str, code: int = 2) -> NoReturn:
    """Bad input: one line on stderr naming the problem and the fix, exit code 2, no traceback. (A run stopped by
    its breaker says so the same way, with its own code: sage_dspy.breaker.EXIT_CODE.)"""
    err.print(f"[red]error:[/red] {escape(redact_text(message))}", highlight=False, soft_wrap=True)  # "[lm]": no markup
    raise typer.Exit(code=code)


class UserErrorsAsOneLine(TyperGroup):
    """The app's command group. A SageError from any command, at any depth, becomes `fail`'s one line; any
    other exception keeps its traceback, because it is a bug. Progress bars have stopped by the time it prints:
    the error has left their `with` blocks."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["argv"] = list(args)  # what was typed after `sage`, for the resume hint of an interrupted run
        return super().parse_args(ctx, with_optional_values(args))

    def make_context(self, info_name, args, parent=None, **extra):
        try:  # `sage --bogus`: the group's own options
            return super().make_context(info_name, args, parent=parent, **extra)
        except USAGE_ERRORS as error:
            fail(usage_line(error))

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SageError as error:
            fail(str(error), getattr(error, "exit_code", 2))
        except USAGE_ERRORS as error:  # a bad option value, an unknown option or command: Click's own checks
            fail(usage_line(error))


def usage_line(error) -> str:
    """Click's usage error as one line with its fix, where Typer would draw a box under a usage banner."""
    message = error.format_message().strip().rstrip(".")
    command = error.ctx.command_path if error.ctx is not None else "sage"
    return f"{message[:1].lower()}{message[1:]}; see '{command} --help'"


# Options whose value may be left out, and what they then mean (Typer's options always take their value).
OPTIONAL_VALUES = {"--ray": "local"}


def with_optional_values(args: list[str]) -> list[str]:
    """`--ray` last or before another option becomes `--ray local`; `--ray auto` is left as it is."""
    out = []
    for position, arg in enumerate(args):
        out.append(arg)
        following = args[position + 1] if position + 1 < len(args) else None
        if arg in OPTIONAL_VALUES and (following is None or following.startswith("-")):
            out.append(OPTIONAL_VALUES[arg])
    return out


def parse_targets(text: str) -> tuple[int, int]:
    """"2-5" or "3" -> (low, high), each within 1..10."""
    parts = text.replace("..", "-").split("-")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, 0)
    except ValueError:
        low = high = 0
    if not (1 <= low <= high <= 10):
        fail(f"target range {text!r} is not valid: give two numbers within 1..10 such as 2-5, low before high")
    return low, high


def check_choice(kind: str, name: str, choices) -> str:
    if name not in choices:
        fail(f"unknown {kind} {name!r}: choose one of {', '.join(choices)}")
    return name


def check_protocol(protocol: str) -> str:
    return check_choice("protocol", protocol, PROTOCOLS)


# Options every command that builds real LMs takes; keys come from the provider's environment variable only.
# Unset options fall back to the environment (SAGE_*), then the --config file, then the defaults (lm/settings.py).
ConfigFile = Annotated[Optional[Path], typer.Option("--config", envvar="SAGE_CONFIG", help="TOML file of LM "
                                                    "settings per role and prices (never keys; see README)")]
ApiBase = Annotated[Optional[str], typer.Option("--api-base", help="endpoint of an OpenAI-compatible server "
                                                                   "(vLLM, Ollama, llama.cpp, ...)")]
MaxTokens = Annotated[Optional[int], typer.Option("--max-tokens", min=1, help="most tokens one LM reply may "
                                                                              "have (every role)")]
LmSeed = Annotated[Optional[int], typer.Option("--lm-seed", help="sampling seed; attempt k sends seed + k "
                                                                  "(for providers that honour seeds)")]
LmTimeout = Annotated[Optional[float], typer.Option("--lm-timeout", min=1, help="seconds one LM request may take")]
LmRetries = Annotated[Optional[int], typer.Option("--lm-retries", min=0, help="DSPy's retries on 429/5xx/timeouts "
                                                                               "(exponential backoff; default 3)")]
BreakerInARow = Annotated[Optional[int], typer.Option("--breaker-in-a-row", min=0, help="stop the run once the "
                          "retriever or an LM fails this many calls in a row at the infrastructure (default 5; 0: off)")]
BreakerRate = Annotated[Optional[float], typer.Option("--breaker-rate", min=0.0, max=1.0, help="...or once this "
                        "share of its last --breaker-window calls failed (default 0.5; 0: off)")]
BreakerWindow = Annotated[Optional[int], typer.Option("--breaker-window", min=0, help="calls the failure rate is "
                          "taken over (default 20)")]
AdapterOption = Annotated[Optional[str], typer.Option("--adapter", help="how replies are asked for and read: chat "
                                                    "(DSPy's field markers; the default), json (JSON mode), "
                                                    "json-schema (a JSON schema per call: tool names and "
                                                    "arguments for the agents' steps)")]
LmParseRetries = Annotated[Optional[int], typer.Option("--lm-parse-retries", min=0, help="fresh rollouts after a "
                                                       "reply the adapter cannot parse (default 2)")]

# Options several commands take with the same meaning and help.
EveryRoleLm = Annotated[Optional[str], typer.Option("--lm", help="LM for every role: 'offline' (the default) or a "
                                                                 "dspy.LM model string")]
Recipe = Annotated[str, typer.Option("--recipe", help=f"program recipe: {', '.join(RECIPES)}")]
Attempts = Annotated[int, typer.Option("--k", min=1, max=32, help="search-agent attempts per question")]
DrawSeed = Annotated[int, typer.Option("--seed", help="seed for drawing passages and targets")]
TextField = Annotated[Optional[str], typer.Option("--text-field", help="corpus field holding the passage text")]
TitleField = Annotated[Optional[str], typer.Option("--title-field", help="corpus field holding the title")]
IdField = Annotated[Optional[str], typer.Option("--id-field", help="corpus field holding the passage id")]
Retriever = Annotated[Optional[str], typer.Option("--retriever", help="search through a retrieval server with "
                                                  "Search-R1's API (e.g. http://127.0.0.1:8000/retrieve, or `sage "
                                                  "serve-index`) instead of the embedded bm25s index")]
Workers = Annotated[int, typer.Option("--workers", min=1, max=1024, help="seeds run at once, and the most LM calls "
                                      "in flight (with --ray: in all, split across its actors)")]
LOCAL_RAY = OPTIONAL_VALUES["--ray"]  # what a bare --ray stands for: start a cluster on this machine
RayAddress = Annotated[Optional[str], typer.Option("--ray", metavar="[ADDRESS]",
                                                   help="run the seeds on Ray actors: a local cluster (bare --ray), "
                                                        "or join one: auto, ray://host:10001 (pip install "
                                                        "'sage-dspy\\[ray]')")]  # \\[: not Rich markup
PROTOCOL_HELP = ("how each pair is checked: 'lean' stops its attempts once one makes it too easy and judges "
                 "normalised matches without a call; 'paper' runs all K attempts and has the LM judge every answer")


def corpus_fields(text_field: Optional[str], title_field: Optional[str], id_field: Optional[str]) -> dict[str, str]:
    """The corpus-reading options given (search/corpus.py's read_corpus), for a run's settings and the reader."""
    return {name: value for name, value in
            (("text_field", text_field), ("title_field", title_field), ("id_field", id_field)) if value}


def ray_engine(address: Optional[str]):
    """The `engine` a run's seeds go to for --ray (None: this process's threads). Ray is imported only by the run."""
    if address is None:
        return None
    if address not in (LOCAL_RAY, "auto") and not re.fullmatch(r"(ray://)?[\w.\-\[\]:]+:\d+", address):
        fail(f"--ray {address!r} is no Ray address: give none (a local cluster), auto, host:6379 or "
             "ray://host:10001")
    from sage_dspy.scale.ray_seeds import RayEngine  # pulls in no Ray: that waits for the first seed

    return RayEngine("" if address == LOCAL_RAY else address)


def breaker_limits(settings: LMSettings) -> BreakerLimits:
    """The run's breaker from the settings' [breaker] (options, environment, file), defaults elsewhere."""
    return BreakerLimits(**settings.breaker)


def check_ray_address(engine) -> None:
    """Something listens at the --ray address, or one line before any work (not a hang at the first seed).
    Parsing (`ray_engine`) touches no network; RayEngine.connect checks again for library callers."""
    if engine is not None and engine.address:
        from sage_dspy.scale.ray_connect import check_listening

        check_listening(engine.address)  # "auto" is not checked: Ray finds that cluster itself


def lm_settings(config_file: Optional[Path], models: dict[str, Optional[str]], *, lm: Optional[str] = None,
                api_base: Optional[str] = None, max_tokens: Optional[int] = None, seed: Optional[int] = None,
                timeout: Optional[float] = None, retries: Optional[int] = None,
                parse_retries: Optional[int] = None, breaker: Optional[dict] = None,
                adapter: Optional[str] = None) -> LMSettings:
    """The options given (`lm` for every role, `models` per role, `breaker`'s limits) over the environment, the
    file, the defaults."""
    shared = {"model": lm, "api_base": api_base, "max_tokens": max_tokens, "seed": seed, "timeout": timeout,
              "retries": retries, "parse_retries": parse_retries,
              "adapter": check_choice("adapter", adapter, ADAPTERS) if adapter is not None else None}
    options = Layer({key: value for key, value in shared.items() if value is not None},
                    {role: {"model": model} for role, model in models.items() if model},
                    breaker={key: value for key, value in (breaker or {}).items() if value is not None})
    return load_settings(config_file, os.environ, options)

