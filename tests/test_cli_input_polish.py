"""Inputs that must simply work: a config file given as a pipe (`--config <(...)`), and help texts that show
what they say (Rich markup must not eat `[ray]`)."""

import os
import threading

import pytest

from tests.cli_helpers import invoke


def test_a_config_given_as_a_pipe_is_read(workdir, tiny_corpus_file):
    fifo = workdir / "settings.toml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("[lm]\ntimeout = 30\n"), daemon=True)
    writer.start()
    result = invoke("generate", "--no-track", "--config", fifo, "--corpus", tiny_corpus_file, "--seeds", "1",
                    "--k", "2", "--rounds", "0", "--out", workdir / "run")
    writer.join(5)
    assert result.exit_code == 0, result.output
    assert (workdir / "run" / "records.jsonl").exists()


@pytest.mark.parametrize("command", ["generate", "evaluate"])
def test_the_ray_extra_shows_in_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "sage-dspy[ray]" in " ".join(result.output.split())
