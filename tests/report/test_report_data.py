"""The report's data, computed from the real tiny study (no drawing involved)."""

import json
import shlex

import optuna
import pytest

from autoprune.exceptions import ConfigError
from autoprune.meters import detect_meter
from autoprune.metrics import SOURCES
from autoprune.report import build_report_data, layer_rows, open_run, plan_summary
from autoprune.metrics import metric_direction, metric_names
from autoprune.study import front_trials


@pytest.fixture(scope="module")
def data(tiny_run):
    return build_report_data(open_run(tiny_run.out_dir))


def _v(t, name):
    return t.metrics[name]["value"]


def test_every_complete_trial_is_a_point_with_sourced_metrics(data, tiny_run):
    complete = tiny_run.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.number for t in data.trials] == [t.number for t in complete]
    for t in data.trials:
        assert {"accuracy", "latency_ms", "size_kb"} <= set(t.metrics)
        assert all(m["source"] in SOURCES for m in t.metrics.values())


def test_on_front_is_the_study_front(data, tiny_run):
    assert {t.number for t in data.trials if t.on_front} == {t.number for t in front_trials(tiny_run.study)}


def test_front_points_are_confirmed_and_their_hover_says_so(data):
    from autoprune.report.figures import hover_text

    front = [t for t in data.trials if t.on_front]
    assert front and all(t.confirmed for t in front)
    text = hover_text(front[0])
    lines = {line.split(":")[0]: line for line in text.split("<br>")}
    assert lines["latency"].endswith("ms <i>(measured, confirmed)</i>")
    assert lines["accuracy"].endswith("<i>(measured)</i>")  # accuracy does not depend on timing
    assert "confirmation pass" in front[0].metrics["latency_ms"]["how"]


def test_baselines_are_labelled(data):
    assert {t.baseline for t in data.trials if t.baseline} == {"dense-fp32", "dense-int8", "uniform-0.5"}


def test_pair_fronts_are_exactly_the_non_dominated_feasible_trials(data):
    assert [p.x for p in data.pairs] == ["latency_ms", "energy_mj", "size_kb"]
    for pair in data.pairs:
        ok = [t for t in data.trials if t.feasible]

        def dominated(t):
            return any(_v(o, "accuracy") >= _v(t, "accuracy") and _v(o, pair.x) <= _v(t, pair.x)
                       and (_v(o, "accuracy") > _v(t, "accuracy") or _v(o, pair.x) < _v(t, pair.x)) for o in ok)

        assert set(pair.front) == {t.number for t in ok if not dominated(t)}
        xs = [_v(data.trial(n), pair.x) for n in pair.front]
        assert xs == sorted(xs)
        assert pair.sources["y"] == ["measured"]
    # energy: this host's meter if it has one, else the profile's watts x measured latency
    assert data.pairs[1].sources["x"] == ["measured" if detect_meter().meter is not None else "estimated"]


def test_layer_rows_follow_model_order_and_the_plan(data, tiny_run):
    space = tiny_run.study.user_attrs["space"]
    order = [layer["name"] for layer in space["layers"]]
    assert data.layer_names == order
    for t in data.trials:
        ft = tiny_run.study.trials[t.number]
        plan, channels = ft.user_attrs["plan"], ft.user_attrs["channels"]
        assert [r["name"] for r in t.layers] == order
        for r in t.layers:
            assert r["ratio"] == plan.get(r["name"], {}).get("ratio")
            assert r["bits"] == plan.get(r["name"], {}).get("bits")
            if r["name"] in channels:
                assert [r["channels_before"], r["channels_after"]] == channels[r["name"]]


def test_layer_rows_keep_plan_layers_the_space_does_not_list():
    space = {"layers": [{"name": "a", "kind": "conv2d"}, {"name": "b", "kind": "linear"}], "groups": [{"name": "a", "kind": "conv2d"}]}
    rows = layer_rows({"b": {"bits": 8}, "a": {"ratio": 0.5, "bits": 8}, "zz": {"bits": 4}}, space, {"a": [8, 4]})
    assert [(r["name"], r["ratio"], r["bits"]) for r in rows] == [("a", 0.5, 8), ("b", None, 8), ("zz", None, 4)]
    assert rows[0]["channels_after"] == 4


def test_plan_summary():
    assert plan_summary({"a": {"ratio": 0.5, "bits": 8}, "b": {"ratio": 0.25, "bits": 32}, "c": {"bits": 8}}) == \
        "ratio mean 0.38, max 0.50 over 2 groups; bits 2×8, 1×32"
    assert plan_summary({}) == "no change"


def test_export_command_is_what_the_cli_parses(data, tiny_run):
    from autoprune.cli import build_parser

    t = data.trials[-1]
    argv = shlex.split(t.export)
    assert argv[0] == "autoprune"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "export" and args.trial == t.number
    assert argv[2] == str(tiny_run.out_dir)


def test_hypervolume_uses_the_study_objectives(data):
    hv = data.hypervolume
    assert hv["objectives"] == ["accuracy", "latency_ms"] and hv["directions"] == ["maximize", "minimize"]
    values = [h["value"] for h in hv["history"]]
    assert values == sorted(values) and values[-1] > 0
    assert hv["sources"] == {"accuracy": ["measured"], "latency_ms": ["measured"]}


def test_facts_name_device_runtime_task_dense_and_run(data):
    facts = data.facts
    assert {"Device profile", "Measured on", "Measurement settings", "Runtime versions", "Task", "Dense model", "Run"} <= set(facts)
    rows = {(g, r["label"]): r for g, rs in facts.items() for r in rs}
    assert rows[("Device profile", "name")]["value"] == "local-cpu"
    assert rows[("Dense model", "accuracy")]["source"] == "measured"
    assert rows[("Runtime versions", "onnxruntime")]["value"]
    assert "cpu" in {label for g, label in rows if g == "Measured on"}
    assert "meter" in {label for g, label in rows if g == "Measured on"}
    assert all(r["source"] in (*SOURCES, "setting", "recorded") for r in rows.values())
    assert data.study["duration_s"] > 0 and data.study["running"] is False
    assert rows[("Run", "confirmation settings")]["value"] == json.dumps({"rounds": 3, "min_duration_s": 0.1, "margin": 0.1}, separators=(", ", ": "))
    assert "every front point confirmed: yes" in rows[("Run", "confirmation pass")]["value"]


def test_data_is_json_and_has_no_optional_sections(data):
    doc = json.loads(json.dumps(data.to_dict(), allow_nan=False))
    assert doc["sections"] == {}


def test_running_and_failed_trials_are_tolerated(tiny_run, tmp_path):
    """A study still running (a RUNNING trial) with a FAIL trial still gives a report."""
    src = tiny_run.study
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="live", storage=url, directions=src.directions)
    for k, v in src.user_attrs.items():
        study.set_user_attr(k, v)
    for t in src.get_trials(states=(optuna.trial.TrialState.COMPLETE,))[:3]:
        study.add_trial(t)
    failed = study.ask()
    failed.set_user_attr("fail_reason", "CandidateError: NaN output")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    study.ask()  # left RUNNING, as in a study being watched
    (tmp_path / "run.json").write_text(json.dumps({"study_name": "live", "storage": url, "config": tiny_run.study.user_attrs["config"]}))
    d = build_report_data(open_run(tmp_path))
    assert len(d.trials) == 3 and d.study["running"] is True
    assert d.failed == [{"number": 3, "state": "FAIL", "reason": "CandidateError: NaN output"}]
    assert [t["state"] for t in d.timeline] == ["COMPLETE"] * 3 + ["FAIL", "RUNNING"]


def test_sections_attach_when_their_data_exists(tiny_run, tmp_path):
    src = tiny_run.study
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="extra", storage=url, directions=src.directions)
    for k, v in src.user_attrs.items():
        study.set_user_attr(k, v)
    study.set_user_attr("sensitivity", {"metric": "accuracy", "source": "measured",
                                        "layers": {"conv1": {"ratio": [0, 0.5], "value": [0.99, 0.9]}}})
    t = src.trials[0]
    pred = {"latency_ms": {"value": 0.1, "unit": "ms", "source": "modelled", "how": "fake cost model (test)"}}
    study.add_trial(optuna.trial.create_trial(values=t.values, params=t.params, distributions=t.distributions,
                                              user_attrs={**t.user_attrs, "predicted": pred}))
    (tmp_path / "run.json").write_text(json.dumps({"study_name": "extra", "storage": url}))
    d = build_report_data(open_run(tmp_path))
    assert d.sections["sensitivity"]["layers"]["conv1"]["value"] == [0.99, 0.9]
    [row] = d.sections["predicted_vs_measured"]["latency_ms"]
    assert row["predicted"] == 0.1 and row["measured"] == t.user_attrs["metrics"]["latency_ms"]["value"]


@pytest.mark.parametrize("content, match", [(None, "run.json: not found"), ("{}", "not a run file"),
                                            ('{"study_name": "x", "storage": "sqlite:////nonexistent/x.db"}', "does not exist")])
def test_bad_run_dirs_raise_config_errors_naming_the_file(tmp_path, content, match):
    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(ConfigError, match=match):
        open_run(tmp_path)


def test_unknown_study_name(tiny_run, tmp_path):
    url = json.loads((tiny_run.out_dir / "run.json").read_text())["storage"]
    (tmp_path / "run.json").write_text(json.dumps({"study_name": "nope", "storage": url}))
    with pytest.raises(ConfigError, match="holds no study named 'nope'"):
        open_run(tmp_path)


def test_accuracy_is_drawn_against_each_budgeted_cost():
    assert metric_names(budget=True) == ("latency_ms", "energy_mj", "size_kb")
    assert [metric_direction(m) for m in ("accuracy", *metric_names(budget=True))] == ["maximize"] + ["minimize"] * 3
