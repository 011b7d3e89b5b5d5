"""The study configuration: one YAML file says what to compress, where, and how to search.

::

    version: 1
    name: quickstart
    task: digits                    # built-in name, or module.path:factory
    task_options: {}
    device: local-cpu               # name in device_profiles/ or a path
    objectives: [accuracy, latency_ms]
    constraints:
      max_accuracy_drop: 0.02       # vs dense fp32, absolute
      latency_ms: null              # budgets on measured metrics (<=)
      energy_mj: null
      size_kb: null
    search:
      n_trials: 48
      timeout_s: 540
      sampler: tpe                  # tpe | nsga2 | gp | random | module.path:factory
      seed: 0
      max_ratio: 0.75
      ratio_step: 0.05
      round_to: 8
      bits: [8, 32]                 # subset of the device's bits; default: all it supports
      exclude: []                   # module paths or re: patterns to leave alone
      baselines: [dense-fp32, dense-int8, uniform-0.25, uniform-0.5]   # also dense-int4, uniform-0.5-int2 ...
      sensitivity:                  # per-group analysis before the search (see below)
        enabled: true
        ratios: [0.25, 0.5, 0.75]   # ratios tried per group, plus max_ratio; snapped to ratio_step
        collapse: 0.1               # cap a group below its first ratio losing more accuracy than this; null: no caps
        rounds: 3                   # interleaved latency rounds over all the analysis's artifacts
        window_s: 0.15              # timed window per model and round
        bits: true                  # also each layer's accuracy cost in int8 (the ladder keeps costly ones fp32)
      ladder: 8                     # seeds from the curves for this many latency targets; 0: none
      mode: measure                 # measure | model (the calibrated cost model) | hybrid (see below)
      hybrid_margin: 0.1            # hybrid: measure a trial whose latency 10 % lower would reach the front
      screen: true                  # with a cost model: turn away a plan its untrained twin prices over budget
      discovery:                    # budget of tracing the model to find the search space (the probe aside)
        seconds: 300                # null: no time limit
        memory_mb: null             # resident memory it may add; null: half the memory available
    build:
      importance: magnitude         # magnitude | l1 | bn_scale | lamp | fpgm | module.path:factory
      bn_batches: 8
      finetune_steps: 0
      finetune_lr: 0.0003
      calibration_samples: 256
      calibration: minmax           # activation ranges: minmax | percentile (artifact and simulation)
      calibration_percentile: 99.99 # with percentile: % of values kept, half the rest cut at each end
      sparsity: none                # none | "unstructured:<ratio>" | "N:M" (quote it: "2:4")
      qat_steps: 0                  # QAT steps in the simulation of layers below 8 bits
      activation_bits: 8            # activations into layers below 8 bits (simulated): 2-16, null = float
    confirm:                        # after the search, re-measure the front (see below)
      rounds: 10                    # 0 turns the confirmation pass off
      min_duration_s: 0.25          # timed window per round; null: the device profile's
      margin: 0.1                   # also re-measure trials within 10 % of the front's costs
    storage: null                   # any Optuna storage URL; default sqlite in the run dir

What each section does is told where it is done: the confirmation pass in :mod:`autoprune.study.confirm`,
bit-widths below 8 (int8 stand-ins, simulated accuracy) in :mod:`autoprune.study.candidate`, the
sensitivity analysis and ladder in :mod:`autoprune.sensitivity` and :mod:`autoprune.ladder`, sparsity in
:mod:`autoprune.compress.sparsity`, ``search.mode`` in :mod:`autoprune.study.hybrid`, ``search.screen``
in :mod:`autoprune.study.screen`; the README's "YAML formats" says it for users.

Each section is read where its settings are defined: ``search`` in :mod:`autoprune.config.search`,
``build`` in :mod:`autoprune.config.build`, the rest in :mod:`autoprune.config.study`.
"""

from __future__ import annotations

from ..baselines import BASELINE_RE
from ..samplers import SAMPLERS
from .search import MODES, SearchSettings, SensitivitySettings
from .study import CONFIG_VERSION, ConfirmSettings, Constraints, StudyConfig, load_study_config

__all__ = ["StudyConfig", "SearchSettings", "SensitivitySettings", "Constraints", "ConfirmSettings", "load_study_config",
           "SAMPLERS", "BASELINE_RE", "MODES", "CONFIG_VERSION"]
