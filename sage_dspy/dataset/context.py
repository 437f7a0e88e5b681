"""What every format writer is given beside the pairs: the runs they came from and the export's choices."""

from dataclasses import dataclass

from sage_dspy.dataset.pairs import Run


@dataclass(frozen=True)
class ExportContext:
    runs: dict[str, Run]  # by folder name, as pairs name their `source_run`
    data_source: str  # the Search-R1 dataset name the rows claim (search_r1.DATA_SOURCES)
    license: str  # an SPDX-style id for the dataset card
    ratios: dict[str, float]  # the requested split shares
    split_seed: int

    def run_of(self, pair: dict) -> Run:
        return self.runs[pair["source_run"]]
