"""Optuna samplers by name: the registry ``search.sampler`` is checked against.

:data:`SAMPLERS` maps a name to ``factory(search: SearchSettings) -> optuna.samplers.BaseSampler``;
the factory reads what it needs from the search settings (``seed``, ``n_trials``). A
sampler of one's own is ``search.sampler: mypkg.module:make_sampler`` in the study YAML,
or registered under a name::

    @autoprune.samplers.SAMPLERS.register("cmaes")
    def make_cmaes(search):
        return optuna.samplers.CmaEsSampler(seed=search.seed)

Constraints reach every sampler through ``Trial.set_constraint`` (Optuna 5), so nothing
sampler-specific is needed for them. Nothing here imports optuna until a sampler is made,
so loading a study YAML stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .exceptions import ConfigError
from .registry import Registry

if TYPE_CHECKING:
    import optuna

    from .config import SearchSettings

__all__ = ["SAMPLERS", "make_sampler"]

SAMPLERS = Registry("search.sampler", "sampler", returns="optuna.samplers:BaseSampler")


@SAMPLERS.register("tpe")
def _tpe(search: SearchSettings) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(
        seed=search.seed, multivariate=True, n_startup_trials=max(4, min(10, search.n_trials // 4)),
    )


@SAMPLERS.register("nsga2")
def _nsga2(search: SearchSettings) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=search.seed, population_size=max(8, min(50, search.n_trials // 4)))


@SAMPLERS.register("gp")
def _gp(search: SearchSettings) -> optuna.samplers.BaseSampler:
    import optuna

    try:
        return optuna.samplers.GPSampler(seed=search.seed)
    except ImportError as e:  # GPSampler needs scipy
        raise ConfigError(f"search.sampler 'gp' needs an extra package: {e}") from None


@SAMPLERS.register("random")
def _random(search: SearchSettings) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=search.seed)


def make_sampler(search: SearchSettings) -> optuna.samplers.BaseSampler:
    """The sampler ``search.sampler`` names, seeded with ``search.seed``.

    Raises:
        ConfigError: unknown name (the message lists the known ones), a reference that
            cannot be imported, or a factory that made no Optuna sampler.
    """
    return SAMPLERS.create(search.sampler, search)
