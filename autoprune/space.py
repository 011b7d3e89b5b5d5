"""The search space, discovered from the model.

Every prunable channel group — layers coupled through residual adds, concatenations,
depthwise convolutions or normalisation, resolved by torch-pruning's dependency graph —
gets one ``ratio:<root module path>`` parameter; every quantizable layer gets one
``bits:<module path>`` parameter. Layers that cannot take part are listed with the reason.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

import torch
import torch_pruning as tp
from torch import nn

from .budget import DiscoveryBudget, run_within, traced
from .exceptions import ConfigError, PlanError
from .heads import head_size
from .inputs import Inputs, call, check_inputs
from .macs import layer_macs
from .plan import LayerPlan, Plan
from .support import check_supported, matches
from .unwrapped import dependency_graph, fit_dims, resizable_owners

__all__ = ["SearchSpace", "ChannelGroup", "QuantLayer", "Excluded", "discover", "keep_channels", "layer_macs"]

PRUNABLE_ROOTS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclasses.dataclass(frozen=True)
class ChannelGroup:
    """Output channels of ``name`` and everything coupled to them, pruned together.

    ``step`` > 1 means channels go in whole blocks of ``step`` (attention heads, their size
    found by :func:`autoprune.heads.head_size` from the module holding the q/k/v linears:
    ``head_dim``, ``attention_head_size``, or a head count such as ``num_attention_heads``);
    at least one block is kept. ``attention`` names those modules: pruning updates their
    head counts (:func:`autoprune.heads.set_heads`) so that their forward still runs.

    ``groups`` > 1 means a grouped convolution (ResNeXt, RegNet) or GroupNorm splits the
    channels into ``groups`` equal slices: every slice loses the same positions, as
    Torch-Pruning's pruners do, so the layer keeps its group count and equal slices.
    """

    name: str
    kind: str
    channels: int
    members: tuple[str, ...]
    macs_share: float
    max_ratio: float
    step: int = 1
    groups: int = 1
    attention: tuple[str, ...] = ()

    def kept(self, ratio: float, round_to: int) -> int:
        """Channels this group keeps at ``ratio`` (see :func:`keep_channels`)."""
        return keep_channels(self.channels, ratio, round_to, self.step, self.groups)


@dataclasses.dataclass(frozen=True)
class QuantLayer:
    name: str
    kind: str
    macs_share: float
    bits: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Excluded:
    name: str
    what: str  # "prune" or "quantize"
    reason: str


def keep_channels(channels: int, ratio: float, round_to: int, block: int = 1, groups: int = 1) -> int:
    """Channels kept when pruning ``ratio`` of ``channels``, a multiple of ``round_to`` and at least one step.

    Multiples of 8 (or 4) keep vectorised CPU kernels on their fast path; a layer too
    narrow for the step is rounded to single channels instead. With ``block`` > 1 (whole
    attention heads) the count is a multiple of ``block`` and at least one block. With
    ``groups`` > 1 every one of the ``groups`` equal slices keeps the same count (at least
    one step), rounded so that the total is a multiple of ``round_to`` where the slices allow.
    """
    if groups > 1:
        per_slice = round_to // math.gcd(round_to, groups)
        return groups * keep_channels(channels // groups, ratio, per_slice, block)
    if block > 1:
        return block * keep_channels(channels // block, ratio, 1)
    step = round_to if channels >= 2 * round_to else 1
    keep = int(round(channels * (1.0 - ratio) / step)) * step
    return int(min(channels, max(step, keep)))


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What can be searched for one model, with the settings that shape the parameters.

    Args:
        groups: Prunable channel groups in model order.
        layers: Quantizable layers in model order.
        excluded: Layers left out of pruning or quantization, with the reason.
        total_macs: MACs of the dense model at batch 1.
        ratio_step: Granularity of the ratio parameters.
        round_to: Kept channel counts are multiples of this.
    """

    groups: tuple[ChannelGroup, ...]
    layers: tuple[QuantLayer, ...]
    excluded: tuple[Excluded, ...]
    total_macs: int
    ratio_step: float = 0.05
    round_to: int = 8

    def group(self, name: str) -> ChannelGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    # -- Optuna parameters --------------------------------------------------------------
    def suggest(self, trial: Any) -> Plan:
        """Ask an Optuna trial for every parameter of this space; returns the plan."""
        params = {}
        for g in self.groups:
            if g.max_ratio > 0:
                params[f"ratio:{g.name}"] = trial.suggest_float(f"ratio:{g.name}", 0.0, g.max_ratio, step=self.ratio_step)
        for q in self.layers:
            if len(q.bits) > 1:
                params[f"bits:{q.name}"] = trial.suggest_categorical(f"bits:{q.name}", list(q.bits))
        return self.plan_from_params(params)

    def plan_from_params(self, params: dict[str, Any]) -> Plan:
        layers: dict[str, dict] = {}
        for key, value in params.items():
            kind, _, name = key.partition(":")
            # Optuna's stepped floats carry binary noise (0.15000000000000002): keep plans readable
            layers.setdefault(name, {})["ratio" if kind == "ratio" else "bits"] = round(value, 10) if kind == "ratio" else value
        for q in self.layers:  # single-choice layers are fixed, not searched
            if len(q.bits) == 1:
                layers.setdefault(q.name, {})["bits"] = q.bits[0]
        order = {n: i for i, n in enumerate([g.name for g in self.groups] + [q.name for q in self.layers])}
        return Plan({n: LayerPlan(**layers[n]) for n in sorted(layers, key=lambda n: order.get(n, 1 << 30))})

    def params_for(self, ratio: float, bits: int) -> dict[str, Any]:
        """Parameters of a uniform plan (every group at ``ratio``, capped, every layer at ``bits``)."""
        params: dict[str, Any] = {}
        for g in self.groups:
            if g.max_ratio > 0:
                r = min(ratio, g.max_ratio)
                params[f"ratio:{g.name}"] = round(round(r / self.ratio_step) * self.ratio_step, 10)
        for q in self.layers:
            if len(q.bits) > 1:
                params[f"bits:{q.name}"] = bits if bits in q.bits else 32
        return params

    def _check_names(self, plan: Plan) -> None:
        names = {g.name for g in self.groups} | {q.name for q in self.layers} | {e.name for e in self.excluded}
        if unknown := plan.unmatched(names):
            raise PlanError(f"plan: layers.{unknown[0]} names no layer of the model (layers: {', '.join(sorted(names))})")

    def resolve(self, plan: Plan) -> tuple[dict[str, float], dict[str, int]]:
        """Per-group ratios and per-layer bits of ``plan``, checked against this space.

        Raises:
            PlanError: a key names no layer, a ratio exceeds what the group allows, a layer
                that cannot be pruned gets a ratio, or bits are not allowed for the layer.
        """
        self._check_names(plan)
        ratios = {}
        group_names = {g.name for g in self.groups}
        for key, lp in plan.layers.items():
            if lp.ratio and not key.startswith("re:") and key not in group_names:
                reason = next((e.reason for e in self.excluded if e.name == key and e.what == "prune"), "not a channel group root")
                raise PlanError(f"plan: layers.{key}.ratio: {key} cannot be pruned ({reason})")
        for g in self.groups:
            r = plan.ratio(g.name)
            if r > g.max_ratio + 1e-9:
                raise PlanError(f"plan: layers.{g.name}.ratio must be in [0, {g.max_ratio}], got {r}")
            ratios[g.name] = r
        return ratios, self.resolve_bits(plan)

    def resolve_bits(self, plan: Plan) -> dict[str, int]:
        """Per-layer bits of ``plan``; ratios are not looked at (the model may be pruned already).

        Raises:
            PlanError: a key names no layer, or bits are not allowed for a layer.
        """
        self._check_names(plan)
        bits = {}
        for q in self.layers:
            b = plan.bits(q.name)
            if b not in q.bits:
                raise PlanError(f"plan: layers.{q.name}.bits must be one of {list(q.bits)}, got {b}")
            bits[q.name] = b
        return bits

    def summary(self) -> dict[str, Any]:
        return {
            "groups": [dataclasses.asdict(g) for g in self.groups],
            "layers": [dataclasses.asdict(q) for q in self.layers],
            "excluded": [dataclasses.asdict(e) for e in self.excluded],
            "total_macs": self.total_macs,
            "ratio_step": self.ratio_step,
            "round_to": self.round_to,
        }


def output_layers(model: nn.Module, example_input: Inputs) -> set[str]:
    """Conv/linear modules whose output reaches the model's output through parameter-free ops only.

    Their output channels are the model's outputs (class logits, decoder channels), so
    pruning them would change what the model computes, not only how fast.
    """
    produced: dict[Any, str] = {}

    def record(name: str):
        def hook(mod, inp, out):  # returns None: a forward hook's return value replaces the output
            if torch.is_tensor(out) and out.grad_fn is not None:
                produced.setdefault(out.grad_fn, name)
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if isinstance(m, PRUNABLE_ROOTS)]
    try:
        with torch.enable_grad():
            out = call(model, example_input)
    finally:
        for h in hooks:
            h.remove()
    outs = [out] if torch.is_tensor(out) else [t for t in (out.values() if isinstance(out, dict) else out) if torch.is_tensor(t)]
    found, seen, stack = set(), set(), [t.grad_fn for t in outs]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if fn in produced:
            found.add(produced[fn])
            continue
        stack.extend(f for f, _ in fn.next_functions)
    return found


def _slices(DG: tp.DependencyGraph, group: Any) -> int:
    """Equal slices a group's channels fall into: Torch-Pruning's channel groups, 1 when none.

    A grouped convolution (or GroupNorm) mixes channels only within each of its ``groups``
    slices, so every slice must lose the same positions (Torch-Pruning's ``BasePruner``
    reads the counts from each layer's pruner the same way). Depthwise convolutions
    (one channel per group) shrink their group count instead and impose nothing. Layers with
    different counts are all satisfied by their least common multiple. An
    ``nn.MultiheadAttention`` prunes its width (Torch-Pruning's pruner shrinks ``head_dim``,
    keeping ``num_heads``) and splits it into ``num_heads`` slices: each head loses the same
    positions, so no channel moves to another head.
    """
    counts = [1]
    for dep, _ in group:
        mod = dep.target.module
        if isinstance(mod, nn.MultiheadAttention):
            counts.append(mod.num_heads)
            continue
        pruner = DG.get_pruner_of_module(mod) if isinstance(mod, nn.Module) else None
        if pruner is None or (isinstance(mod, tp.ops.TORCH_CONV) and mod.groups == mod.out_channels):
            continue
        out = DG.is_out_channel_pruning_fn(dep.handler)
        counts.append(pruner.get_out_channel_groups(mod) if out else pruner.get_in_channel_groups(mod))
    return math.lcm(*counts)


def discover(
    model: nn.Module,
    example_input: Inputs,
    *,
    max_ratio: float = 0.75,
    ratio_step: float = 0.05,
    round_to: int = 8,
    bits: Iterable[int] = (8, 32),
    exclude: Sequence[str] = (),
    probe: bool = False,
    budget: DiscoveryBudget | None = DiscoveryBudget(),
) -> SearchSpace:
    """Find the prunable channel groups and quantizable layers of ``model``.

    Args:
        model: The dense model (not modified).
        example_input: An input of batch size 1: a tensor, or a dict of tensors passed as keyword
            arguments (``input_ids``, ``attention_mask``, ...).
        max_ratio: Largest pruning ratio offered for any group, in [0, 0.95].
        ratio_step: Granularity of the ratio parameters.
        round_to: Kept channel counts are multiples of this.
        bits: Bit-widths offered to every quantizable layer (must include 32).
        exclude: Module paths or ``re:`` patterns kept out of pruning and quantization.
        probe: Also prune each group alone by one step on a copy and exclude, with the reason,
            the groups that break the model (:mod:`autoprune.probe`; a study does).
        budget: Time and memory tracing may take (:class:`~autoprune.budget.DiscoveryBudget`:
            300 s and half the free memory by default; None: no limit); the probe is not counted.

    Returns:
        The :class:`SearchSpace`.

    Raises:
        UnsupportedLayerError: modules have their own parameters of a type torch-pruning cannot
            resize and are not in ``exclude`` (one message names them all, with the ``exclude``
            list to paste). Bare parameters used position by position (class token, position
            embeddings, layer scale) are resized with their channels instead (:mod:`autoprune.unwrapped`).
        DiscoveryError: Torch-Pruning fails to trace the model; ``DiscoveryBudgetError``: past ``budget``.
    """
    if not 0.0 <= max_ratio <= 0.95:
        raise ConfigError(f"discover: max_ratio must be in [0, 0.95], got {max_ratio}")
    bits = tuple(sorted(set(bits)))
    if 32 not in bits:
        raise ConfigError(f"discover: bits must include 32, got {list(bits)}")
    example_input = check_inputs(example_input, "discover: example_input")
    model = model.eval()
    space = run_within(budget, model, lambda: _discover(model, example_input, max_ratio, ratio_step, round_to, bits, exclude))
    if not probe:
        return space
    from .probe import probe as probe_groups  # the probe prunes (autoprune.compress), which builds on this module
    return probe_groups(model, example_input, space)


def _discover(model: nn.Module, example_input: Inputs, max_ratio: float, ratio_step: float, round_to: int,
              bits: tuple[int, ...], exclude: Sequence[str]) -> SearchSpace:
    DG = traced(model, "trace the dependency graph", lambda: dependency_graph(model, example_input))
    frozen = check_supported(model, exclude, resizable_owners(model, DG))
    names = {m: n for n, m in model.named_modules()}
    owner = {p: n for n, m in model.named_modules() for p in m.parameters(recurse=False)}
    macs = layer_macs(model, example_input)
    total = max(1, sum(macs.values()))
    outputs = output_layers(model, example_input)

    excluded: list[Excluded] = [Excluded(n, "prune", why) for n, why in frozen.items()]
    ignored = []
    for name, m in model.named_modules():
        if not isinstance(m, PRUNABLE_ROOTS):
            continue
        if name in outputs:
            excluded.append(Excluded(name, "prune", "its output channels are the model's output"))
            ignored.append(m)
        elif matches(name, exclude):
            excluded.append(Excluded(name, "prune", "excluded by configuration"))
            ignored.append(m)

    params = {p: n for n, p in model.named_parameters()}
    groups = []
    all_groups = traced(model, "group the channels", lambda: list(DG.get_all_groups(ignored_layers=ignored, root_module_types=PRUNABLE_ROOTS)))
    for group in all_groups:
        root = group[0].dep.target.module
        members, touched, heads = [], [], {}
        for dep, _ in group:
            mod = dep.target.module
            path = names.get(mod) if isinstance(mod, nn.Module) else owner.get(mod)
            if path is None:
                continue
            touched += [f for f in frozen if path == f or path.startswith(f + ".")]
            if isinstance(mod, nn.Module) and path not in members:
                members.append(path)
            if isinstance(mod, nn.Linear) and dep.handler == DG.get_pruner_of_module(mod).prune_out_channels:
                parent = path.rpartition(".")[0]
                heads.setdefault(parent, []).append(path)
        if touched:
            excluded.append(Excluded(names[root], "prune", f"coupled to {touched[0] or 'the root module'}: {frozen[touched[0]]}"))
            continue
        # Attention heads: the group cuts the outputs of two or more linears (q/k/v) of a
        # module that declares a head size or count; the residual stream cuts only one (o) per module.
        share = sum(macs.get(n, 0) for n in members) / total
        channels = int(DG.get_out_channels(root))
        ambiguous = fit_dims(group, channels, params)  # class tokens, position embeddings, layer scales
        if ambiguous:
            excluded.append(Excluded(names[root], "prune", ambiguous))
            continue
        sizes = {p: head_size(model.get_submodule(p), channels) for p, outs in heads.items() if len(outs) >= 2}
        attention = tuple(p for p, size in sizes.items() if size > 1)
        step = math.lcm(1, *sizes.values())
        slices = _slices(DG, group)
        if slices > 1 and (channels % slices or channels // slices % step or channels // slices < 2 * step):
            excluded.append(Excluded(names[root], "prune", f"its {channels} channels feed grouped layers in {slices} "
                                     "groups: too few per group to remove any while keeping the groups equal"))
            continue
        groups.append(ChannelGroup(names[root], type(root).__name__.lower(), channels, tuple(members), share, max_ratio, step, slices,
                                   attention))

    order = {n: i for i, n in enumerate(names.values())}
    groups.sort(key=lambda g: order[g.name])
    layers, q_excluded = [], []
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention) and not matches(name, exclude):
            q_excluded.append(Excluded(name, "quantize", "its fused q/k/v projection (in_proj_weight) stays fp32; "
                                       "its out_proj is a layer of its own"))
        if isinstance(m, QUANTIZABLE):
            if matches(name, exclude):
                q_excluded.append(Excluded(name, "quantize", "excluded by configuration"))
            elif name not in macs:  # no node of the exported graph computes with it (an auxiliary head)
                q_excluded.append(Excluded(name, "quantize", "does not run on the example input (a head used in training only)"))
            else:
                layers.append(QuantLayer(name, type(m).__name__.lower(), macs.get(name, 0) / total, bits))
    return SearchSpace(tuple(groups), tuple(layers), tuple(excluded + q_excluded), int(total), ratio_step, round_to)
