"""Exit 1 unless this interpreter's installed distributions are exactly the lock's pins for this platform.

Run by `make` after installing: the lock is the whole environment (every transitive dependency, pinned with
hashes), so anything extra, missing or at another version means the install drifted. The installer itself
(pip) and the project (installed editable) are not pinned in the lock and are left out of the comparison.
"""

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

UNPINNED = {"pip", "sage-dspy"}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match and (match[3] is None or Marker(match[3]).evaluate()):
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def installed() -> dict[str, str]:
    found = {canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    return {name: version for name, version in found.items() if name not in UNPINNED}


def main(lock: Path) -> int:
    want, have = locked(lock), installed()
    problems = [f"missing {name}=={version}" for name, version in sorted(want.items()) if name not in have]
    problems += [f"not in the lock: {name}=={version}" for name, version in sorted(have.items()) if name not in want]
    problems += [f"{name} is {have[name]}, the lock pins {version}" for name, version in sorted(want.items())
                 if name in have and have[name] != version]
    for problem in problems:
        print(f"{lock}: {problem}", file=sys.stderr)
    if problems:
        print("the environment does not match the lock: run `make clean-venv` and `make install`", file=sys.stderr)
        return 1
    print(f"{sys.prefix}: {len(have)} distributions, exactly the lock's pins")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")))
