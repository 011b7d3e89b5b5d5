"""The ``build:`` section of a study YAML: how a plan becomes an artifact.

The settings themselves are :class:`~autoprune.compress.settings.BuildSettings` (recorded in every
exported plan); :func:`read_build` checks the section, :func:`check_activation_bits` the one key that
depends on the study's bit-widths.
"""

from __future__ import annotations

from .._schema import Reader
from ..compress.importance import IMPORTANCE
from ..compress.settings import CALIBRATION_METHODS, BuildSettings, parse_setting
from ..exceptions import ConfigError

__all__ = ["read_build", "check_activation_bits"]

# Build keys added after studies were first stored: left out of StudyConfig.to_dict() at their defaults,
# so that studies run before these keys existed still resume.
BUILD_DEFAULTS_UNWRITTEN = (
    ("sparsity", "none"), ("qat_steps", 0),
    ("activation_bits", 8), ("calibration", "minmax"), ("calibration_percentile", 99.99),
)


def read_build(b: Reader, bits, label: str) -> BuildSettings:
    """The ``build`` section, checked (``b.finish()`` included).

    Args:
        b: The section's reader.
        bits: ``search.bits``, or None when unset (then :meth:`StudyConfig.check_device` checks
            ``activation_bits`` against the device's).
        label: The file, for errors.

    Raises:
        ConfigError: one line naming the file and the key path.
    """
    build = BuildSettings(
        importance=IMPORTANCE.read(b, "importance", "magnitude"),
        bn_batches=b.int("bn_batches", 8, lo=0, hi=10_000),
        finetune_steps=b.int("finetune_steps", 0, lo=0, hi=1_000_000),
        finetune_lr=b.float("finetune_lr", 3e-4, lo=0.0, hi=10.0),
        calibration_samples=b.int("calibration_samples", 256, lo=1, hi=1_000_000),
        seed=b.int("seed", 0, lo=0),
        sparsity=_sparsity(b),
        qat_steps=b.int("qat_steps", 0, lo=0, hi=1_000_000),
        activation_bits=None if b.has("activation_bits") and b.raw("activation_bits") is None
        else b.int("activation_bits", 8, lo=2, hi=16),
        calibration=b.str("calibration", "minmax", choices=CALIBRATION_METHODS),
        calibration_percentile=b.float("calibration_percentile", 99.99, lo=50.0, hi=100.0),
    )
    if build.qat_steps and build.sparsity != "none":
        raise b.fail("qat_steps", "must be 0 when build.sparsity is set: QAT would refill the zeroed weights")
    if b.has("calibration_percentile") and build.calibration != "percentile":
        raise b.fail("calibration_percentile", f"applies only with build.calibration: percentile (it is {build.calibration!r})")
    if bits is not None:
        check_activation_bits(build, bits, "search.bits", None, label)
    b.finish()
    return build


def check_activation_bits(build: BuildSettings, bits, source: str, device, where: str) -> None:
    """``build.activation_bits`` other than 8 only where layers below 8 bits exist; below 8, only bits the device runs."""
    a = build.activation_bits
    if a == 8:
        return
    bits = sorted(set(bits))
    if not any(b < 8 for b in bits):
        raise ConfigError(
            f"{where}: build.activation_bits {a} applies only to layers below 8 bits (simulated), and the study's "
            f"bit-widths ({source}: {bits}) have none: leave it at 8, or search a bit-width in 2..7 on a device that runs it"
        )
    if device is not None and a is not None and a < 8 and a not in device.bits:
        raise ConfigError(
            f"{where}: build.activation_bits {a} is not a bit-width device {device.name} runs ({list(device.bits)}): "
            "use one of those below 8, 8 or more, or null (float activations)"
        )


def _sparsity(b: Reader) -> str:
    value = b.raw("sparsity", "none")
    try:
        parse_setting(value)
    except ConfigError as e:
        raise b.fail("sparsity", str(e)) from None
    return value
