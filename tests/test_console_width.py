"""The commands lay out for the terminal they run in, whatever COLUMNS said when the process started: the
consoles are made at import, and rich would otherwise keep the width it read then (a CI shell's COLUMNS=200
made the 80-column tests fail)."""

import subprocess
import sys

PROBE = """
import os
from sage_dspy.cli import printing
widths = [printing.out.width, printing.err.width]
os.environ["COLUMNS"] = "80"
widths += [printing.out.width, printing.err.width]
os.environ["COLUMNS"] = "131"
widths += [printing.out.width, printing.err.width]
print(widths)
"""


def test_console_width_follows_columns_after_import():
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "LC_ALL": "C"}
    reply = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert reply.returncode == 0, reply.stderr
    assert reply.stdout.strip() == "[200, 200, 80, 80, 131, 131]"
