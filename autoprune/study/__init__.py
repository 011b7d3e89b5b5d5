"""The Optuna multi-objective search over per-layer pruning ratios and bit-widths."""

from .candidate import CandidateResult, build, measure
from .context import StudyContext
from .outputs import front_records, front_trials, write_outputs
from .runner import StudyResult, open_storage, run_study

__all__ = ["run_study", "StudyResult", "StudyContext", "CandidateResult", "build", "measure", "front_trials", "front_records", "write_outputs", "open_storage"]
