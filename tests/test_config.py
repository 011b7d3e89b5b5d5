from pathlib import Path

import pytest
import yaml

from autoprune.config import StudyConfig, load_study_config
from autoprune.device import DeviceProfile, load_device_profile
from autoprune.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_study_config_loads():
    for path in sorted((ROOT / "studies").glob("*.yaml")):
        cfg = load_study_config(path)
        assert cfg.name and cfg.objectives


def test_config_round_trips():
    cfg = load_study_config(ROOT / "studies" / "quickstart.yaml")
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: 1\nname: a\nsearch: {max_ratio: 1.2}\n", r"study.yaml: search.max_ratio must be a number in \[0.0, 0.95\], got 1.2"),
        ("version: 1\nname: a\nsearch: {n_trails: 3}\n", r"study.yaml: unknown key search.n_trails"),
        ("version: 1\nname: a\nobjectives: [accuracy, speed]\n", r"objectives\[1\] must be one of"),
        ("version: 1\nname: a\nsearch: {sampler: cmaes}\n", r"search.sampler must be one of"),
        ("version: 1\nname: a\nsearch: {baselines: [dense-fp16]}\n", r"search.baselines\[0\]"),
        ("version: 1\nname: a\nsearch: {exclude: ['re:(']}\n", r"search.exclude\[0\] is not a valid regular expression"),
        ("version: 1\nname: a\nconstraints: {max_accuracy_drop: -1}\n", r"constraints.max_accuracy_drop"),
        ("version: 1\nname: a\nbuild: {importance: taylorish}\n", r"build.importance must be one of"),
        ("version: 2\nname: a\n", r"version must be an integer in \[1, 1\]"),
        ("name: a\n", r"version is required"),
        ("version: 1\nname: 'a b'\n", r"name must be letters"),
        ("version: 1\nname: a\nsearch: [1, 2]\n", r"search must be a mapping"),
        ("- just\n- a list\n", r"expected a mapping at the top level"),
        ("version: 1\nname: a\n  bad: indent\n", r"not valid YAML \(line"),
    ],
)
def test_bad_study_config_names_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_study_config(write(tmp_path, text))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: study config not found"):
        load_study_config(tmp_path / "nope.yaml")


def test_device_profile_round_trip(tmp_path):
    dev = load_device_profile("local-cpu")
    assert dev.name == "local-cpu" and 8 in dev.bits and dev.profiler.threads == 1
    dev.save(tmp_path / "copy.yaml")
    assert load_device_profile(tmp_path / "copy.yaml") == dev


def test_unknown_device_profile_lists_known():
    with pytest.raises(ConfigError, match=r"unknown device profile 'jetson-9000' \(known: .*local-cpu"):
        load_device_profile("jetson-9000")


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"bits": [8]}, "bits must include 32"),
        ({"bits": [9, 32]}, r"bits\[0\] must be one of"),
        ({"profiler": {"kind": "magic"}}, "profiler.kind must be one of"),
        ({"profiler": {"threads": 0}}, "profiler.threads"),
        ({"profiler": {"kind": "agent"}}, "agent.urls is required"),
        ({"agent": {"urls": ["http://x:1"], "token": "s3cret"}}, "agent.token must not hold the token"),
    ],
)
def test_bad_device_profile(tmp_path, patch, message):
    data = load_device_profile("local-cpu").to_dict()
    for k, v in patch.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    p = tmp_path / "dev.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        load_device_profile(p)


def test_atomic_write_gives_ordinary_file_mode(tmp_path):
    import os

    from autoprune._schema import atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "x.txt", "hello")
    finally:
        os.umask(umask)
    assert (tmp_path / "x.txt").read_text() == "hello"
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]  # no temporary file left behind
