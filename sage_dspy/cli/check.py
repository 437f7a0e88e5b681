"""`sage check`: before a run, what each role's model does on fixed small tasks in this program's formats."""

from typing import Annotated, Optional

import typer

from sage_dspy.cli import printing
from sage_dspy.cli.options import (ApiBase, ConfigFile, EveryRoleLm, LmParseRetries, LmRetries, LmSeed, LmTimeout,
                                   MaxTokens, lm_settings)
from sage_dspy.lm.roles import ROLES
from sage_dspy.runs.check import check_models


def check_command(
    lm: EveryRoleLm = None,
    generator_lm: Annotated[Optional[str], typer.Option(help="LM for the generator only")] = None,
    solver_lm: Annotated[Optional[str], typer.Option(help="LM for the search agent only")] = None,
    judge_lm: Annotated[Optional[str], typer.Option(help="LM for the answer judge only")] = None,
    reviser_lm: Annotated[Optional[str], typer.Option(help="LM for the reviser only")] = None,
    config_file: ConfigFile = None,
    api_base: ApiBase = None,
    max_tokens: MaxTokens = None,
    lm_seed: LmSeed = None,
    lm_timeout: LmTimeout = None,
    lm_retries: LmRetries = None,
    lm_parse_retries: LmParseRetries = None,
) -> None:
    """Say per role whether its model can do the job: parse rate, tool calls, judge calibration, max tokens,
    latency, a verdict and one line of advice. Exit 0 when every role is usable, 1 otherwise."""
    settings = lm_settings(config_file, {"generator": generator_lm, "solver": solver_lm, "judge": judge_lm,
                                         "reviser": reviser_lm}, lm=lm, api_base=api_base, max_tokens=max_tokens,
                           seed=lm_seed, timeout=lm_timeout, retries=lm_retries, parse_retries=lm_parse_retries)
    shared_options, role_options = settings.split(ROLES)
    verdicts = check_models(settings.lms(ROLES), role_options, **shared_options)
    printing.checked(verdicts, offline="offline" in settings.lms(ROLES).values())
    if not all(verdict.usable for verdict in verdicts):
        raise typer.Exit(code=1)
