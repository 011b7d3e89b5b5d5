import pytest

from autoprune.exceptions import ConfigError
from autoprune.pick import parse_pick


def test_parse_and_apply():
    p = parse_pick("max accuracy where latency_ms <= 0.5 and size_kb < 800")
    assert p.direction == "max" and p.metric == "accuracy"
    assert p.conditions == (("latency_ms", "<=", 0.5), ("size_kb", "<", 800.0))
    assert p.admits({"latency_ms": 0.5, "size_kb": 799.0})
    assert not p.admits({"latency_ms": 0.51, "size_kb": 10.0})
    assert not p.admits({"latency_ms": 0.1})  # a metric the trial lacks never satisfies a condition
    assert parse_pick("min latency_ms").key({"latency_ms": 2.0}) == -2.0


@pytest.mark.parametrize("text", ["", "max", "maximize accuracy", "max speed", "max accuracy where", "max accuracy where x < 1", "max accuracy where latency_ms ~ 1"])
def test_bad_pick(text):
    with pytest.raises(ConfigError, match="--pick"):
        parse_pick(text)


@pytest.mark.parametrize("text", ["max test_accuracy", "min latency_ms where test_accuracy >= 0.9"])
def test_selecting_on_the_test_split_is_refused(text):
    with pytest.raises(ConfigError, match=r"^--pick .*selecting on the test split \(test_accuracy\) is not allowed; pick on accuracy"):
        parse_pick(text)
