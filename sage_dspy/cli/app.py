"""The `sage` command line: the Typer app and its commands, each defined in its own module. Bad input is one
line and exit code 2 (cli/options.py)."""

import sys

import typer

from sage_dspy.cli import export, store
from sage_dspy.cli.check import check_command
from sage_dspy.cli.compile import compile_command
from sage_dspy.cli.decontaminate import decontaminate_command
from sage_dspy.cli.evaluate import evaluate_command
from sage_dspy.cli.generate import generate_command
from sage_dspy.cli.options import UserErrorsAsOneLine
from sage_dspy.cli.serve import serve_index_command
from sage_dspy.cli.solve import solve_command

app = typer.Typer(help="sage-dspy: verified, difficulty-steered deep-search QA pairs (SAGE as a DSPy program).",
                  cls=UserErrorsAsOneLine, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


@app.callback()
def root() -> None:
    """Generate, compile and evaluate SAGE programs. Every command runs offline by default."""


app.command("generate")(generate_command)
app.command("evaluate")(evaluate_command)
app.command("solve")(solve_command)
app.command("check")(check_command)
app.command("compile")(compile_command)
app.add_typer(store.prompts_app, name="prompts")
app.add_typer(store.runs_app, name="runs")
app.command("ui")(store.ui_command)
app.command("export")(export.export)
app.command("decontaminate")(decontaminate_command)
app.command("serve-index")(serve_index_command)


def main() -> None:
    app(prog_name="sage")


if __name__ == "__main__":
    sys.exit(main())
