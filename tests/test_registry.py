"""The extension-point registries: names, ``module.path:factory`` references, and YAML checked against them."""

from __future__ import annotations

import sys
import textwrap

import pytest
import yaml

from autoprune.compress.importance import IMPORTANCE
from autoprune.config import load_study_config
from autoprune.device import load_device_profile
from autoprune.exceptions import ConfigError
from autoprune.meters import METERS, detect_meter, make_meter
from autoprune.profile import PROFILERS, Profiler, make_profiler
from autoprune.registry import Registry
from autoprune.samplers import SAMPLERS
from autoprune.tasks import TASKS


def test_register_get_and_names():
    r = Registry("thing.kind", "thing")

    @r.register("b")
    def make_b():
        return "B"

    assert make_b() == "B"  # the decorator hands the function back unchanged
    r.register("a", lambda: "A")
    r.register("c", "textwrap:dedent")  # a lazy entry: imported on first get
    assert r.names() == ["a", "b", "c"] and list(r) == ["a", "b", "c"] and "a" in r and len(r) == 3
    assert r.create("a") == "A" and r.get("c") is textwrap.dedent
    assert r.get("textwrap:indent") is textwrap.indent  # any reference, registered or not
    assert r.get("textwrap:TextWrapper.wrap") is textwrap.TextWrapper.wrap  # dotted attribute
    assert r.pop("a") is not None and "a" not in r and r.pop("a") is None


def test_unknown_name_lists_the_known_ones():
    r = Registry("thing.kind", "thing")
    r.register("one", lambda: 1)
    r.register("two", lambda: 2)
    with pytest.raises(ConfigError, match=r"unknown thing 'three' \(known: \['one', 'two'\]; or give 'module.path:factory'\)"):
        r.get("three")
    with pytest.raises(ConfigError, match=r"^f.yaml: thing.kind must be one of \['one', 'two'\] or 'module.path:factory', got 'x y'$"):
        r.check("x y", "f.yaml")


def test_bad_reference_and_wrong_product_are_config_errors():
    r = Registry("thing.kind", "thing", returns=int)
    r.register("str", lambda: "not an int")
    with pytest.raises(ConfigError, match=r"thing 'no_such_module_zz:make' cannot be imported: No module named 'no_such_module_zz'"):
        r.get("no_such_module_zz:make")
    with pytest.raises(ConfigError, match=r"thing 'textwrap:nope' cannot be imported: .*has no attribute 'nope'"):
        r.get("textwrap:nope")
    with pytest.raises(ConfigError, match=r"f.yaml: thing.kind: thing 'textwrap:nope' cannot be imported"):
        r.check("textwrap:nope", "f.yaml", load=True)
    r.check("textwrap:nope", "f.yaml")  # without load only the form is checked: reading a stored run never imports it
    with pytest.raises(ConfigError, match=r"thing 'str': factory returned str, expected builtins.int"):
        r.create("str")
    with pytest.raises(ValueError, match="without ':'"):
        r.register("a:b", lambda: 1)
    with pytest.raises(ValueError, match="not a 'module.path:attr' reference"):
        r.register("lazy", "not a reference")


def test_every_extension_point_has_a_registry_with_its_built_ins():
    assert set(SAMPLERS.names()) >= {"tpe", "nsga2", "gp", "random"}
    assert set(IMPORTANCE.names()) >= {"magnitude", "l1", "bn_scale", "lamp", "fpgm"}
    assert set(PROFILERS.names()) >= {"local", "agent"}
    assert set(METERS.names()) >= {"rapl", "hwmon", "nvml"}
    assert set(TASKS.names()) >= {"digits", "fashion"}


def test_declaring_the_registries_imports_nothing_heavy():
    """Loading a study YAML or a device profile checks names without torch, optuna or onnxruntime."""
    import subprocess

    code = (
        "import sys\n"
        "from autoprune.registry import Registry\n"
        "from autoprune.samplers import SAMPLERS\n"
        "from autoprune.device import PROFILERS, load_device_profile\n"
        "load_device_profile('local-cpu')\n"
        "heavy = sorted(m for m in ('torch', 'optuna', 'onnxruntime', 'torch_pruning') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- names in YAML are checked against the registry: one line naming file, key and known names ---

def _study(tmp_path, section: str, key: str, value: str):
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump({"version": 1, "name": "a", section: {key: value}}))
    return p


def _device(tmp_path, section: str, key: str, value: str):
    data = load_device_profile("local-cpu").to_dict()
    data[section] = {**data[section], key: value}
    p = tmp_path / "dev.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


YAML_KEYS = [  # (registry, file writer, loader, section, key)
    pytest.param(SAMPLERS, _study, load_study_config, "search", "sampler", id="search.sampler"),
    pytest.param(IMPORTANCE, _study, load_study_config, "build", "importance", id="build.importance"),
    pytest.param(PROFILERS, _device, load_device_profile, "profiler", "kind", id="profiler.kind"),
]


@pytest.mark.parametrize("registry, write, load, section, key", YAML_KEYS)
def test_unknown_name_in_yaml_is_one_line_naming_file_key_and_known_names(tmp_path, registry, write, load, section, key):
    path = write(tmp_path, section, key, "no-such-thing")
    with pytest.raises(ConfigError) as e:
        load(path)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {section}.{key} must be one of {registry.names()}")
    assert message.endswith("or 'module.path:factory', got 'no-such-thing'")


@pytest.mark.parametrize("registry, write, load, section, key", YAML_KEYS)
def test_a_newly_registered_name_is_accepted_in_yaml(tmp_path, registry, write, load, section, key):
    registry.register("site-special", "textwrap:dedent")
    try:
        loaded = load(write(tmp_path, section, key, "site-special"))
        assert getattr(getattr(loaded, section), key) == "site-special"
        with pytest.raises(ConfigError, match=r"must be one of \[.*'site-special'.*\]"):
            load(write(tmp_path, section, key, "site-specia"))
    finally:
        registry.pop("site-special")


@pytest.mark.parametrize("registry, write, load, section, key", YAML_KEYS)
def test_a_reference_in_yaml_is_kept_as_written(tmp_path, registry, write, load, section, key):
    loaded = load(write(tmp_path, section, key, "my_pkg.things:make_it"))
    assert getattr(getattr(loaded, section), key) == "my_pkg.things:make_it"


def test_unknown_meter_on_the_agent_command_line_is_one_line_exit_2():
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "autoprune", "agent", "serve", "--port", "0", "--meters", "rapl,geiger"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--meters: meter must be one of ['hwmon', 'nvml', 'rapl']" in lines[0] and "'geiger'" in lines[0]


# --- a user's own implementation through module.path:factory ---

USER_MODULE = '''
import numpy as np
from autoprune.metrics import Metric
from autoprune.meters import EnergyMeter
from autoprune.profile import Measurement, Profiler


class ConstantProfiler(Profiler):
    """A user's profiler: a fixed latency, labelled as modelled."""

    def measure(self, model_path, inputs=None):
        ms = 2.5 * self.device.profiler.batch_size
        return Measurement(Metric(ms, "ms", "modelled", "constant model"), {"median_ms": ms, "n": 1}, None,
                           {"profiler": "constant"}, {"model": str(model_path)})


class CountingMeter(EnergyMeter):
    name = "counting"
    source = "measured"
    min_window_s = 0.0

    def __init__(self, roots):
        self.roots = roots

    def probe(self):
        pass

    def start(self):
        pass

    def stop(self):
        return 0.5


def make_meter(roots):
    return CountingMeter(roots)


def make_not_a_profiler(device):
    return "just a string"


def make_importance():
    import torch

    def reversed_index(group):  # channel 0 scores highest, the last channel lowest
        n = group[0].dep.target.module.out_channels
        return torch.arange(float(n)).flip(0)

    return reversed_index
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's, importable as ``user_ext_<test>`` (a fresh name per test)."""
    name = f"user_ext_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_users_profiler_from_device_yaml_measures(tmp_path, user_module):
    device = load_device_profile(_device(tmp_path, "profiler", "kind", f"{user_module}:ConstantProfiler"))
    profiler = make_profiler(device)
    assert isinstance(profiler, Profiler) and type(profiler).__name__ == "ConstantProfiler"
    m = profiler.measure(tmp_path / "m.onnx")
    assert m.latency_ms.value == 2.5 and m.latency_ms.source == "modelled"


def test_a_users_profiler_that_is_no_profiler_or_missing_is_named(tmp_path, user_module):
    device = load_device_profile(_device(tmp_path, "profiler", "kind", f"{user_module}:make_not_a_profiler"))
    with pytest.raises(ConfigError, match=r"dev.yaml: profiler kind '.*:make_not_a_profiler': factory returned str, expected autoprune.profile.base.Profiler"):
        make_profiler(device)
    device = load_device_profile(_device(tmp_path, "profiler", "kind", f"{user_module}:Missing"))
    with pytest.raises(ConfigError, match=r"dev.yaml: profiler kind '.*:Missing' cannot be imported"):
        make_profiler(device)


def test_a_users_meter_by_reference_and_by_name(user_module, tmp_path):
    detection = detect_meter(order=(f"{user_module}:make_meter",), roots={"hwmon": str(tmp_path)})
    assert detection.meter.name == "counting" and detection.meter.roots == {"hwmon": str(tmp_path)}
    METERS.register("counting", f"{user_module}:make_meter")
    try:
        assert make_meter("counting").stop() == 0.5
    finally:
        METERS.pop("counting")


def test_a_users_importance_prunes_the_channels_it_scores_lowest(user_module):
    import torch
    from torch import nn

    from autoprune.compress.prune import prune_channels
    from autoprune.space import discover

    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    kept_before = model[0].weight.detach().clone()
    x = torch.zeros(1, 1, 8, 8)
    space = discover(model, x, max_ratio=0.75, ratio_step=0.25, round_to=1)
    prune_channels(model, {"0": 0.25}, space, x, importance=f"{user_module}:make_importance")
    assert model[0].out_channels == 6
    assert torch.equal(model[0].weight, kept_before[:6])  # the two it scored lowest (7 and 6) went

