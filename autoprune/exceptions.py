"""One root error and a subclass per failure kind.

The CLI catches :class:`AutopruneError`, prints its message on one line and exits with
code 2 (bad input) or 1 (a failure while working). Anything else is a bug and keeps its
traceback.
"""

__all__ = [
    "AutopruneError",
    "ConfigError",
    "UnsupportedLayerError",
    "PlanError",
    "CandidateError",
    "ProfilerError",
    "AgentUnreachableError",
    "ExportError",
    "StorageError",
    "StudyMismatchError",
    "DiscoveryError",
    "DiscoveryBudgetError",
]


class AutopruneError(Exception):
    """Root of every error autoprune raises on purpose."""

    exit_code = 1


class ConfigError(AutopruneError, ValueError):
    """A file, key or value given by the user is wrong. Message names file and key path."""

    exit_code = 2


class PlanError(ConfigError):
    """A compression plan does not fit the model (unknown layer, ratio or bits out of range)."""


class UnsupportedLayerError(AutopruneError):
    """A layer cannot be pruned or quantized, and the model would come out wrong.

    Attributes:
        modules: Paths of the modules (or channel groups) to exclude, all of them at once.
    """

    exit_code = 2

    def __init__(self, message: str, modules=()) -> None:
        super().__init__(message)
        self.modules = tuple(modules)


class CandidateError(AutopruneError):
    """A candidate could not be built or measured (export error, NaN output, ...)."""


class ProfilerError(AutopruneError):
    """A latency/energy measurement failed."""


class AgentUnreachableError(ProfilerError):
    """The on-device profiling agent could not be reached after retries."""


class ExportError(AutopruneError):
    """Exporting a trial failed (unknown trial, nothing matches the pick, artifact mismatch)."""


class StorageError(AutopruneError):
    """The study's Optuna storage could not be reached (after retries) or its URL is not one Optuna opens."""


class StudyMismatchError(ConfigError):
    """A worker joining a study has another base model, device profile or CPU than the study records."""


class DiscoveryError(AutopruneError):
    """Torch-Pruning cannot trace the model's dependency graph, so no search space can be found."""


class DiscoveryBudgetError(DiscoveryError):
    """Discovery ran past its time or memory budget (:class:`autoprune.budget.DiscoveryBudget`).

    Attributes:
        model: The model's class name.
        resource: What ran out: ``"seconds"`` or ``"memory_mb"``.
        limit: The budget, in seconds or MB.
        used: What was used when discovery was stopped, in the same unit.
    """

    def __init__(self, message: str, *, model: str = "", resource: str = "", limit: float = 0.0, used: float = 0.0) -> None:
        super().__init__(message)
        self.model, self.resource, self.limit, self.used = model, resource, limit, used
