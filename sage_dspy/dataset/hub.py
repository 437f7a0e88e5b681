"""`sage export --push-to-hub REPO`: the `hf` folder uploaded as a Hugging Face dataset repository.

The token comes from the environment only (HF_TOKEN, as huggingface_hub reads it), never from an option, so it
never reaches a shell history, a log or the dataset card. sage-dspy sets HF_HUB_OFFLINE=1 by default
(environment.py): a push must be asked for on purpose, and is refused in one line while offline.
"""

import os
import re
from pathlib import Path

from sage_dspy.errors import SageError
from sage_dspy.redact import redact_text

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HubError(SageError, ValueError):
    """A push that cannot be made: offline, no token, a bad repo id, or the Hub refused it."""


def check_push(repo: str, formats: tuple[str, ...]) -> None:
    """Everything a push needs, checked before the export writes anything."""
    if not _REPO_ID.match(repo):
        raise HubError(f"--push-to-hub {repo!r} is not a repository id; pass <user or org>/<name>")
    if "hf" not in formats:
        raise HubError("--push-to-hub uploads the hf folder; add hf to --format")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise HubError("--push-to-hub needs the network, and HF_HUB_OFFLINE is set (sage sets it by default); "
                       "export without it, or run with HF_HUB_OFFLINE=0 and HF_TOKEN set")
    if not (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")):
        raise HubError("--push-to-hub needs a write token in HF_TOKEN; set it in the environment (never as an "
                       "option) and run again")


def push(folder: Path, repo: str) -> str:
    """Create (or reuse) the dataset repository and upload the folder; the URL of the commit."""
    from huggingface_hub import HfApi

    api = HfApi()  # HF_TOKEN and HF_ENDPOINT are read from the environment
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        commit = api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="dataset",
                                   commit_message="sage-dspy export")
    except Exception as error:  # the Hub's own errors: one line, and the export on disk stays whole
        text = " ".join(redact_text(str(error)).split())[:200]
        raise HubError(f"the Hub refused the push to {repo} ({type(error).__name__}: {text}); the export in "
                       f"{folder} is complete: upload it later with `huggingface-cli upload {repo} {folder} "
                       "--repo-type dataset`") from None
    return str(getattr(commit, "commit_url", commit))
