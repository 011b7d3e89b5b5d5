from pathlib import Path

import pytest
import yaml

from autoprune.config import StudyConfig, load_study_config
from autoprune.device import load_device_profile
from autoprune.exceptions import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_study_config_loads():
    for path in sorted((ROOT / "studies").glob("*.yaml")):
        cfg = load_study_config(path)
        assert cfg.name and cfg.objectives


def test_config_round_trips():
    cfg = load_study_config(ROOT / "studies" / "quickstart.yaml")
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg


def test_a_yaml_without_optional_sections_gets_the_documented_defaults():
    from autoprune.config import CONFIG_VERSION

    # the dataclass defaults are the ones the YAML reference documents
    assert StudyConfig.from_dict({"version": CONFIG_VERSION, "name": "x"}, "x.yaml") == StudyConfig(name="x", path="x.yaml")


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


LOWBIT = "version: 1\nname: a\ndevice: bitserial-sim\nsearch: {bits: [2, 4, 8, 32]}\n"


@pytest.mark.parametrize(
    "build_yaml, message",
    [
        ("{activation_bits: 1}", r"build.activation_bits must be an integer in \[2, 16\], got 1"),
        ("{activation_bits: 4.5}", r"build.activation_bits must be an integer in \[2, 16\], got 4.5"),
        ("{activation_bits: 17}", r"build.activation_bits must be an integer in \[2, 16\], got 17"),
        ("{calibration: entropy}", r"build.calibration must be one of \['minmax', 'percentile'\], got 'entropy'"),
        ("{calibration: percentile, calibration_percentile: 101}", r"build.calibration_percentile must be a number in \[50.0, 100.0\], got 101"),
        ("{calibration: percentile, calibration_percentile: high}", r"build.calibration_percentile must be a number"),
        ("{calibration_percentile: 99.9}", r"build.calibration_percentile applies only with build.calibration: percentile \(it is 'minmax'\)"),
        ("{calibraton: percentile}", r"unknown key build.calibraton"),
    ],
)
def test_bad_activation_and_calibration_settings_name_file_and_key(tmp_path, build_yaml, message):
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'study.yaml'}: {message}"):
        load_study_config(write(tmp_path, f"{LOWBIT}build: {build_yaml}\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("search: {bits: [8, 32]}\nbuild: {activation_bits: 4}\n",
         r"build.activation_bits 4 applies only to layers below 8 bits \(simulated\), and the study's bit-widths \(search.bits: \[8, 32\]\) have none"),
        ("search: {bits: [8, 32]}\nbuild: {activation_bits: null}\n", r"build.activation_bits None applies only to layers below 8 bits"),
        ("search: {bits: [8, 32], baselines: [dense-fp32, dense-int4]}\n",
         r"search.baselines\[1\] 'dense-int4' needs 4-bit layers, which the study's bit-widths \(search.bits: \[8, 32\]\) do not include"),
        ("search: {bits: [4, 8, 32], baselines: [uniform-0.25-int2]}\n", r"search.baselines\[0\] 'uniform-0.25-int2' needs 2-bit layers"),
        ("search: {baselines: [uniform-0.5-int9]}\n", r"search.baselines\[0\] must be dense-fp32, dense-int<b> \(b in 2..8\), .*got 'uniform-0.5-int9'"),
        ("search: {baselines: [uniform-0.5-int8]}\n", r"search.baselines\[0\] must be .*uniform-<ratio> \(int8\)"),  # one label per plan
        ("search: {baselines: [dense-int1]}\n", r"search.baselines\[0\] must be"),
    ],
)
def test_low_bit_options_need_low_bit_widths_in_the_study(tmp_path, text, message):
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'study.yaml'}: {message}"):
        load_study_config(write(tmp_path, "version: 1\nname: a\n" + text))


@pytest.mark.parametrize(
    "text, message",
    [
        ("build: {activation_bits: 4}\n", r"^a.yaml: build.activation_bits 4 applies only to layers below 8 bits \(simulated\), and the study's bit-widths \(device local-cpu: \[8, 32\]\) have none"),
        ("search: {baselines: [dense-int4]}\n", r"^a.yaml: search.baselines\[0\] 'dense-int4' needs 4-bit layers, which the study's bit-widths \(device local-cpu: \[8, 32\]\) do not include"),
        ("device: bitserial-sim\nbuild: {activation_bits: 3}\n", r"^a.yaml: build.activation_bits 3 is not a bit-width device bitserial-sim runs \(\[2, 4, 8, 32\]\)"),
        ("device: bitserial-sim\nsearch: {bits: [4, 8, 32]}\nbuild: {activation_bits: 3}\n", r"build.activation_bits 3 is not a bit-width device bitserial-sim runs"),
    ],
)
def test_without_search_bits_the_device_decides_and_check_device_says_so(text, message):
    cfg = StudyConfig.from_dict(yaml.safe_load("version: 1\nname: a\n" + text), "a.yaml")  # loads: the device is unknown here
    with pytest.raises(ConfigError, match=message):
        cfg.check_device(load_device_profile(cfg.device))


@pytest.mark.parametrize(
    "build",
    [
        {"activation_bits": 4},
        {"activation_bits": 2, "calibration": "percentile"},
        {"activation_bits": None, "calibration": "percentile", "calibration_percentile": 99.9},
        {"activation_bits": 16, "calibration": "percentile", "calibration_percentile": 100},
    ],
)
def test_low_bit_options_round_trip_and_pass_the_device_check(build):
    cfg = StudyConfig.from_dict({"version": 1, "name": "a", "device": "bitserial-sim", "build": build,
                                 "search": {"baselines": ["dense-fp32", "dense-int4", "uniform-0.25-int2", "uniform-0.5-fp32"]}}, "a.yaml")
    cfg.check_device(load_device_profile("bitserial-sim"))
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg
    assert {k: cfg.to_dict()["build"][k] for k in build} == build


def test_new_build_keys_at_their_defaults_are_not_written_so_older_studies_resume():
    cfg = load_study_config(ROOT / "studies" / "quickstart.yaml")
    written = cfg.to_dict()["build"]
    assert not {"activation_bits", "calibration", "calibration_percentile", "sparsity", "qat_steps"} & set(written)
    explicit = StudyConfig.from_dict({**cfg.to_dict(), "build": {**written, "activation_bits": 8, "calibration": "minmax"}})
    assert explicit == cfg and explicit.to_dict() == cfg.to_dict()
