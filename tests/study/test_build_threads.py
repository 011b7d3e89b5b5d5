"""Builds do not depend on the machine's core count: torch's thread count is pinned to the study's."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from autoprune.study.candidate import build
from autoprune.study.context import StudyContext
from autoprune.threads import torch_threads


def test_torch_threads_pins_and_restores():
    before = torch.get_num_threads()
    with torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    with torch_threads(None):  # None leaves the count alone
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.fixture(scope="module")
def finetuning_ctx(tiny_config):
    # fine-tuning sums gradients over threads: the stage whose floats depend on the thread count
    cfg = dataclasses.replace(tiny_config, build=dataclasses.replace(tiny_config.build, finetune_steps=5))
    ctx = StudyContext.prepare(cfg)
    return ctx, ctx.space.plan_from_params(ctx.space.params_for(0.5, 32))


def test_a_build_is_the_same_whatever_the_callers_thread_count(finetuning_ctx):
    ctx, plan = finetuning_ctx
    before = torch.get_num_threads()
    try:
        shas = {}
        for pinned in (1, 2):
            ctx.build_threads = pinned
            for caller in (1, 2):
                torch.set_num_threads(caller)
                shas[pinned, caller] = build(ctx, plan).sha256
                assert torch.get_num_threads() == caller  # the caller's count is restored
        assert shas[1, 1] == shas[1, 2] and shas[2, 1] == shas[2, 2]
        # the pin is what makes them equal: 1 and 2 threads fine-tune to different floats
        assert shas[1, 1] != shas[2, 2]
    finally:
        ctx.build_threads = None
        torch.set_num_threads(before)


def test_the_study_records_its_build_threads_and_export_carries_them(tiny_run, tmp_path):
    import yaml

    from autoprune.export import export_trial

    assert tiny_run.study.user_attrs["build_threads"] == torch.get_num_threads()
    result = export_trial(tiny_run.out_dir, trial=0, out_dir=tmp_path / "e")
    meta = yaml.safe_load((result.out_dir / "plan.yaml").read_text())["meta"]
    assert meta["build_threads"] == torch.get_num_threads()
