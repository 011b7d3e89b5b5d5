"""Optuna samplers by name.

Constraints reach every sampler through ``Trial.set_constraint`` (Optuna 5), so nothing
sampler-specific is needed for them.
"""

from __future__ import annotations

import optuna

from ..config import SAMPLERS, SearchSettings
from ..exceptions import ConfigError

__all__ = ["make_sampler"]

def make_sampler(search: SearchSettings) -> optuna.samplers.BaseSampler:
    name, seed = search.sampler, search.seed
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True,
            n_startup_trials=max(4, min(10, search.n_trials // 4)),
        )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(8, min(50, search.n_trials // 4)))
    if name == "gp":
        try:
            return optuna.samplers.GPSampler(seed=seed)
        except ImportError as e:  # GPSampler needs scipy
            raise ConfigError(f"search.sampler 'gp' needs an extra package: {e}") from None
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"search.sampler must be one of {list(SAMPLERS)}, got {name!r}")
