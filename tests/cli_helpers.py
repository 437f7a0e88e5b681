"""Running the CLI in tests, and what every bad input must look like: one line, exit code 2, no traceback."""

from typer.testing import CliRunner

from sage_dspy.cli.app import app

ENV = {"COLUMNS": "200"}  # rich wraps its error box at 80 columns otherwise


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def assert_one_line_error(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert result.stdout == ""
