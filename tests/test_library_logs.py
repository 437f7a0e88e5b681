"""runs/library_logs.py: what libraries print goes to the run's log file; -v shows it too; our warnings stay."""

import logging
import sys
import warnings

import pytest
from tqdm import tqdm

from sage_dspy.runs.library_logs import library_output
from sage_dspy.tracking.runs import rounded


def _chatter():
    print("printed by a library")
    logging.getLogger("some.library").warning("logged by a library")
    for _ in tqdm(range(3), desc="a progress bar"):
        pass
    warnings.warn("a library's warning", UserWarning)  # raised from this test file: not sage_dspy's own


@pytest.mark.parametrize("verbose", [False, True])
def test_library_output_goes_to_the_log_file_and_to_the_terminal_only_with_verbose(tmp_path, capsys, verbose):
    logger = logging.getLogger("some.library")
    handler = logging.StreamHandler(sys.stderr)  # set up before the capture: it holds the stream itself
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(), library_output(tmp_path / "run" / "compile.log", verbose=verbose):
            warnings.simplefilter("always")
            _chatter()
    finally:
        logger.removeHandler(handler)
    log = (tmp_path / "run" / "compile.log").read_text()
    for text in ("printed by a library", "logged by a library", "a progress bar", "a library's warning"):
        assert text in log
    shown = capsys.readouterr()
    terminal = shown.out + shown.err
    assert ("logged by a library" in terminal) == verbose and ("a progress bar" in terminal) == verbose
    assert handler.stream is sys.stderr  # restored


def test_sage_dspy_warnings_still_reach_the_terminal(tmp_path, capsys):
    from sage_dspy.tracking.store import TrackingWarning, warn_failed

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with library_output(tmp_path / "compile.log"):
            warn_failed("log something")
    assert "could not log something" in capsys.readouterr().err
    assert TrackingWarning.__name__ not in (tmp_path / "compile.log").read_text()


@pytest.mark.parametrize("value, shown", [(60.23076923076923, 60.23), (4.0, 4.0), (0.0729440001, 0.07294),
                                          (0.75, 0.75), (12345.0, 12345.0), (-3.14159, -3.14)])
def test_metrics_are_rounded_for_reading(value, shown):
    assert rounded(value) == shown
