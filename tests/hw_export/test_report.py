"""report.json's schema (hw_export/report.py): validation, ratios, strict JSON, the generated documentation."""

import copy
import json
from pathlib import Path

import pytest

from hw_export.errors import UserError
from hw_export.report import ModelReport, RunReport, check, ratios, schema_markdown, strict_json

ROOT = Path(__file__).resolve().parents[2]


def per_sample(spikes, synops, energy):
    breakdown = {"loihi": {"synops": energy, "dense_macs": 0.0, "neuron_updates": 0.0, "spikes": 0.0}}
    return {"spikes": spikes, "input_spikes": 10.0, "synops": synops, "neuron_updates": 100.0,
            "energy_j": {"loihi": energy}, "energy_breakdown_j": breakdown}


def model(synapses, neurons, spikes, synops, energy) -> dict:
    layer = {"name": "readout", "neurons": neurons, "original_neurons": neurons, "synapses": synapses,
             "original_synapses": synapses, "spikes": 0.0, "synops": synops, "neuron_updates": 100.0}
    return {"synapses": synapses, "neurons": neurons, "accuracy": {"lava": 0.9, "norse": 0.9},
            "per_sample": per_sample(spikes, synops, energy), "layers": [layer]}


def report() -> dict:
    models = {"dense": model(100, 20, 50.0, 400.0, 4e-6), "dpap": model(25, 5, 40.0, 100.0, 1e-6)}
    return {"schema_version": 2, "dataset": {"name": "digits", "n_test": 360, "timesteps": 30},
            "models": models, "comparison": {"baseline": "dense", "pruned": "dpap",
                                             "ratios": ratios(models["dense"], models["dpap"], "loihi")}}


def test_ratios_are_pruned_over_dense_and_null_where_dense_is_zero():
    dense, pruned = model(100, 20, 50.0, 400.0, 4e-6), model(25, 5, 40.0, 100.0, 1e-6)
    assert ratios(dense, pruned, "loihi") == pytest.approx(
        {"synapses": 0.25, "neurons": 0.25, "spikes": 0.8, "synops": 0.25, "energy": 0.25})
    silent = model(100, 20, 0.0, 400.0, 4e-6)
    assert ratios(silent, pruned, "loihi")["spikes"] is None  # JSON null, never NaN


def test_a_complete_report_passes_and_a_field_the_schema_does_not_declare_fails():
    check(report(), RunReport)
    extra = report()
    extra["models"]["dpap"]["per_sample"]["spikes_per_neuron"] = 1.0
    with pytest.raises(UserError, match=r"models\.dpap\.per_sample holds spikes_per_neuron, which the schema "
                                        r"\(PerSample, hw_export/report.py\) does not declare"):
        check(extra, RunReport)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["models"]["dense"].pop("per_sample"), r"incomplete report: models\.dense\.per_sample is missing"),
    (lambda r: r["dataset"].pop("name"), r"incomplete report: dataset\.name is missing"),
    (lambda r: r["models"]["dense"]["layers"].append("fc9"), r"models\.dense\.layers\[1\] must be a JSON object"),
    (lambda r: r["models"]["dense"].__setitem__("synapses", "100"), r"models\.dense\.synapses must be a number"),
    (lambda r: r["models"]["dense"].__setitem__("neurons", True), r"models\.dense\.neurons must be a number"),
    (lambda r: r.__setitem__("models", []), r"models must be a JSON object"),
])
def test_what_a_report_lacks_or_gets_wrong_is_named(change, message):
    broken = copy.deepcopy(report())
    change(broken)
    with pytest.raises(UserError, match=message):
        check(broken, RunReport, source="x/report.json")


def test_a_model_entry_alone_is_checked_against_the_same_declaration():
    check(model(1, 1, 0.0, 0.0, 0.0), ModelReport)
    with pytest.raises(UserError, match="accuracy holds norse_on_gpu"):
        check({**model(1, 1, 0.0, 0.0, 0.0), "accuracy": {"lava": 1.0, "norse_on_gpu": 1.0}}, ModelReport)


def test_reports_are_strict_json_even_with_a_diverged_number():
    text = strict_json({"loss": [0.5, float("nan")], "ratio": float("inf"), "nested": {"x": (1.0, -float("inf"))}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "loss": [0.5, None], "ratio": None, "nested": {"x": [1.0, None]}}


def test_the_documented_schema_is_the_declared_one():
    documented = (ROOT / "docs" / "report_json.md").read_text()
    assert schema_markdown() in documented, "docs/report_json.md is stale: paste schema_markdown() into it"
