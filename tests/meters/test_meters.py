"""Energy meters against fake sysfs trees (named fake_*), plus one contract every meter passes."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

from autoprune.meters import (
    EstimateMeter,
    HwmonMeter,
    MeterUnavailable,
    NvmlMeter,
    RaplMeter,
    detect_meter,
    make_meter,
    meter_order,
)


def fake_rapl(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    """zones: dir name -> (zone name, energy_uj, max_energy_range_uj)."""
    for d, (name, energy, top) in zones.items():
        z = root / d
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text(f"{energy}\n")
        (z / "max_energy_range_uj").write_text(f"{top}\n")
    return root


def set_energy(root: Path, zone: str, uj: int) -> None:
    (root / zone / "energy_uj").write_text(f"{uj}\n")


def test_rapl_sums_packages_and_skips_subzones(tmp_path):
    root = fake_rapl(tmp_path, {
        "intel-rapl:0": ("package-0", 1_000_000, 262_143_328_850),
        "intel-rapl:1": ("package-1", 5_000_000, 262_143_328_850),
        "intel-rapl:0:0": ("core", 0, 262_143_328_850),
    })
    m = RaplMeter(root)
    m.start()
    set_energy(root, "intel-rapl:0", 3_000_000)  # +2 J
    set_energy(root, "intel-rapl:1", 5_500_000)  # +0.5 J
    set_energy(root, "intel-rapl:0:0", 9_000_000)  # a part of package-0: not added again
    assert m.stop() == pytest.approx(2.5)
    assert m.describe()["zones"] == ["intel-rapl:0 (package-0)", "intel-rapl:1 (package-1)"]


def test_rapl_wraps_around_at_max_energy_range(tmp_path):
    top = 262_143_328_850
    root = fake_rapl(tmp_path, {"intel-rapl:0": ("package-0", top - 1_000_000, top)})
    m = RaplMeter(root)
    m.start()
    set_energy(root, "intel-rapl:0", 2_000_000)  # wrapped: 1 J before the top, 2 J after
    assert m.stop() == pytest.approx(3.0)


def test_rapl_uses_psys_alone_when_present(tmp_path):
    root = fake_rapl(tmp_path, {
        "intel-rapl:0": ("package-0", 0, 10**12),
        "intel-rapl:1": ("psys", 0, 10**12),
    })
    m = RaplMeter(root)
    m.start()
    set_energy(root, "intel-rapl:0", 4_000_000)
    set_energy(root, "intel-rapl:1", 7_000_000)
    assert m.stop() == pytest.approx(7.0)


def test_rapl_unreadable_counter_gives_a_permission_reason(tmp_path, monkeypatch):
    root = fake_rapl(tmp_path, {"intel-rapl:0": ("package-0", 1, 10**12)})
    real_read_text = Path.read_text

    def fake_read_text(self, *a, **k):  # as on Linux >= 5.10 for a non-root user
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", fake_read_text)
    with pytest.raises(MeterUnavailable, match="permission denied.*energy_uj"):
        RaplMeter(root).probe()
    det = detect_meter(roots={"powercap": str(root), "hwmon": str(tmp_path / "none")})
    assert det.meter is None and "permission denied" in det.reasons["rapl"]


def test_rapl_missing_tree_says_so(tmp_path):
    with pytest.raises(MeterUnavailable, match="does not exist"):
        RaplMeter(tmp_path / "nope").probe()
    (tmp_path / "empty").mkdir()
    with pytest.raises(MeterUnavailable, match="no zone with energy_uj"):
        RaplMeter(tmp_path / "empty").probe()


def fake_hwmon(root: Path) -> Path:
    """A Jetson-style INA3221: three rails as inN_input (mV) x currN_input (mA) with labels."""
    d = root / "hwmon3"
    d.mkdir(parents=True)
    (d / "name").write_text("ina3221\n")
    for i, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1000), ("VDD_CPU_GPU_CV", 5000, 400), ("VDD_SOC", 5000, 300)], 1):
        (d / f"in{i}_label").write_text(label + "\n")
        (d / f"in{i}_input").write_text(f"{mv}\n")
        (d / f"curr{i}_input").write_text(f"{ma}\n")
    (d / "in7_input").write_text("1200\n")  # a voltage with no current: not a rail
    return root


def test_hwmon_integrates_the_total_input_rail(tmp_path):
    m = HwmonMeter(fake_hwmon(tmp_path), interval_s=0.005)
    assert [r.label for r in m.rails()] == ["VDD_IN"]  # the parts of VDD_IN are not added again
    m.start()
    t0 = time.monotonic()
    time.sleep(0.3)
    joules = m.stop()
    elapsed = time.monotonic() - t0
    assert joules == pytest.approx(5.0 * elapsed, rel=0.15)  # 5 V x 1 A = 5 W


def test_hwmon_named_rails_are_summed(tmp_path):
    m = HwmonMeter(fake_hwmon(tmp_path), rails=["VDD_CPU_GPU_CV", "VDD_SOC"])
    assert m._watts() == pytest.approx(3.5)
    with pytest.raises(MeterUnavailable, match="VDD_GPU"):
        HwmonMeter(fake_hwmon(tmp_path / "b"), rails=["VDD_GPU"]).probe()


def test_hwmon_power_input_in_microwatts(tmp_path):
    d = tmp_path / "hwmon0"
    d.mkdir()
    (d / "name").write_text("power_meter\n")
    (d / "power1_input").write_text("12500000\n")
    assert HwmonMeter(tmp_path)._watts() == pytest.approx(12.5)


def test_estimate_is_labelled_and_needs_a_figure():
    m = EstimateMeter(10.0, "datasheet")
    m.start()
    time.sleep(0.05)
    assert m.stop() == pytest.approx(0.5, rel=0.5)
    assert m.source == "estimated" and m.describe()["how"] == "datasheet"
    with pytest.raises(MeterUnavailable, match="power.watts"):
        EstimateMeter(None).probe()


@pytest.fixture
def fake_pynvml(monkeypatch):
    """A stand-in for pynvml whose energy counter (mJ) the test sets."""
    mod = types.ModuleType("pynvml")
    mod.counter = 1_000_000

    class NVMLError(Exception):
        pass

    mod.NVMLError = NVMLError
    mod.nvmlInit = lambda: None
    mod.nvmlDeviceGetCount = lambda: 1
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetTotalEnergyConsumption = lambda h: mod.counter
    mod.nvmlDeviceGetName = lambda h: b"Fake GPU"
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    return mod


def test_nvml_counts_millijoules(fake_pynvml):
    m = NvmlMeter()
    m.start()
    fake_pynvml.counter += 2500
    assert m.stop() == pytest.approx(2.5)
    assert m.describe()["gpus"] == ["Fake GPU"]


def test_nvml_without_pynvml_gives_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(MeterUnavailable, match="pynvml is not installed"):
        NvmlMeter().probe()


def test_detect_picks_first_readable_and_reports_the_others(tmp_path):
    fake_hwmon(tmp_path / "hwmon")
    det = detect_meter(roots={"powercap": str(tmp_path / "none"), "hwmon": str(tmp_path / "hwmon")})
    assert det.meter.name == "hwmon"
    assert "does not exist" in det.reasons["rapl"]
    fake_rapl(tmp_path / "powercap", {"intel-rapl:0": ("package-0", 0, 10**12)})
    det = detect_meter(roots={"powercap": str(tmp_path / "powercap"), "hwmon": str(tmp_path / "hwmon")})
    assert det.meter.name == "rapl" and det.reasons == {}


def test_detect_falls_back_to_the_labelled_estimate(tmp_path):
    roots = {"powercap": str(tmp_path / "a"), "hwmon": str(tmp_path / "b")}
    det = detect_meter(roots=roots, fallback=EstimateMeter(5.0, "spec sheet"))
    assert det.meter.source == "estimated" and set(det.reasons) == {"rapl", "hwmon"}
    det = detect_meter(roots=roots, fallback=EstimateMeter(None))
    assert det.meter is None and "power.watts" in det.reasons["estimate"]


def test_meter_order_never_uses_nvml_for_cpu_work():
    assert "nvml" not in meter_order("CPUExecutionProvider")
    assert meter_order("CUDAExecutionProvider")[0] == "nvml"
    with pytest.raises(ValueError, match="known: .*rapl"):
        make_meter("geiger")


# --- the contract every meter passes: probe, then a start/stop window gives joules >= 0 ---

def _rapl(tmp_path):
    return RaplMeter(fake_rapl(tmp_path, {"intel-rapl:0": ("package-0", 0, 10**12)}))


def _nvml(tmp_path):
    return NvmlMeter()


CONTRACT = {
    "rapl": _rapl,
    "hwmon": lambda p: HwmonMeter(fake_hwmon(p), interval_s=0.005),
    "nvml": _nvml,
    "estimate": lambda p: EstimateMeter(3.0, "test"),
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_meter_contract(name, tmp_path, fake_pynvml):
    m = CONTRACT[name](tmp_path)
    m.probe()
    for _ in range(2):  # a meter can be reused window after window
        m.start()
        time.sleep(0.02)
        j = m.stop()
        assert isinstance(j, float) and j >= 0.0
    d = m.describe()
    assert d["name"] == m.name and d["source"] in ("measured", "estimated")
    assert m.min_window_s >= 0.0
