"""A generate run's settings: one frozen value, saved as the run folder's config.json (so a resume can tell
the same run from another) and logged to MLflow with secrets left out."""

import json
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sage_dspy.environment import ARTIFACTS
from sage_dspy.lm.roles import loggable_options
from sage_dspy.runs.seeds import LEGACY_ORDER
from sage_dspy.search.identity import earlier_url_fingerprint, read_index_identity, retriever_settings


@dataclass(frozen=True)
class GenerateConfig:
    corpus: str = "bundled"
    corpus_fields: dict[str, str] = field(default_factory=dict)  # text_field / title_field / id_field
    seeds: int = 40
    accepted: int = 0  # when set, seeds are drawn until this many pairs are kept, and `seeds` is not used
    min_target: int = 2
    max_target: int = 5
    recipe: str = "sage"
    lms: dict[str, str] = field(default_factory=lambda: {"generator": "offline", "solver": "offline",
                                                          "judge": "offline", "reviser": "offline"})
    lm_options: dict = field(default_factory=dict)  # every role: api_base, max_tokens, seed, timeout, num_retries
    role_options: dict[str, dict] = field(default_factory=dict)  # one role: api_base, temperature, max_tokens
    program: str = ""  # the compiled program's source, when one replaces the recipe's prompts
    rounds: int = 3
    k: int = 4
    protocol: str = "lean"  # how pairs are checked: "lean" (early stop, judge shortcut) or "paper" (loop.PROTOCOLS)
    random_seed: int = 0
    out_dir: Path = ARTIFACTS / "runs" / "latest"
    index_root: Path = ARTIFACTS / "indexes"
    search_k: int = 3
    retriever: str = ""  # a retrieval server's URL (search/remote.py); "" searches the embedded bm25s index
    retriever_index: str | None = None  # which index it serves (search/identity.py); None: not asked yet
    seed_order: str = "stream"  # --seeds: the stream's first seeds; "drawn-at-once" in folders from before (seeds.py)

    def to_dict(self) -> dict:
        settings = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}
        settings["lm_options"] = loggable_options(self.lm_options)
        settings["role_options"] = {role: loggable_options(o) for role, o in self.role_options.items()}
        if not self.role_options:
            del settings["role_options"]  # runs that set nothing per role read as before the setting existed
        if not self.accepted:
            del settings["accepted"]  # likewise for runs that ask for a count of seeds
        if self.accepted or self.seed_order == LEGACY_ORDER:
            del settings["seed_order"]  # --accepted always read the stream; older --seeds folders had no key
        del settings["retriever"], settings["retriever_index"]
        settings.update(retriever_settings(self.retriever, self.retriever_index))  # embedded runs read as before
        return settings

    def earlier_settings(self) -> dict:
        """What an older sage recorded for these same settings (run folders from before keep resuming)."""
        return {"retriever_fingerprint": earlier_url_fingerprint(self.retriever)} if self.retriever else {}

    def corpus_label(self) -> str:
        """A short name for the corpus in folder names: 'bundled', or the file or folder name."""
        return Path(self.corpus.rstrip("/")).stem or "corpus"


def identified(config):
    """`config` (a GenerateConfig or CompileConfig) with its retriever's index read from the server, once: a
    server that cannot say leaves it "" (the run then records the URL alone, as runs did before), with a note
    unless it failed at the infrastructure, which the search itself meets and reports."""
    if not config.retriever or config.retriever_index is not None:
        return config
    identity = read_index_identity(config.retriever)
    if not identity.value and not identity.fault:
        warnings.warn(f"the retriever did not say which index it serves ({identity.problem}); the run records "
                      "its address only, so a resume cannot tell another index behind it", stacklevel=2)
    return replace(config, retriever_index=identity.value)


def with_seed_order_of(config: GenerateConfig, settings_file: Path) -> GenerateConfig:
    """`config` as the run folder it resumes drew its seeds: a `--seeds` folder whose config.json predates the
    stream (no `seed_order`) keeps its own draw."""
    if config.accepted or not settings_file.is_file():
        return config
    try:
        written = json.loads(settings_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return config  # RunFolder says what is wrong with it
    if isinstance(written, dict) and "seeds" in written and "seed_order" not in written:
        return replace(config, seed_order=LEGACY_ORDER)
    return config
