"""tools/demo_table.py prints the README's demo table from a run's report.json."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import small_report

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "demo_table.py"


def report(validation: bool = True) -> dict:
    """A complete report (conftest.small_report) with the demo's numbers."""
    report = small_report()
    dense, dpap = report["models"]["dense"], report["models"]["dpap"]
    for model, accuracy, synapses, energy, seconds in ((dense, 0.9611, 100864, 4.7803e-6, 30.0),
                                                       (dpap, 0.9556, 17686, 1.3375e-6, 18.0)):
        model["training"] = {**model.get("training", {}), "wall_time_s": seconds,
                             "epoch_time_s": [seconds / 2, seconds / 2 - 3]}
        model["accuracy"] = {"norse": accuracy, "lava": accuracy}
        model["fixed"]["accuracy"], model["fixed"]["agreement"]["predictions"] = accuracy - 0.01, 0.99
        model["synapses"], model["neurons"] = synapses, 30
        model["per_sample"] = {**model["per_sample"], "synops": 1234.4, "energy_j": {"loihi": energy}}
        model["layers"][0].update(neurons=20, original_neurons=32)
    if validation:
        dpap["accuracy"]["validation"] = 0.95
    report["dataset"] = {"name": "digits-events", "n_train": 1437, "n_validation": 0, "n_test": 360, "timesteps": 30}
    report["comparison"]["ratios"] = {"synapses": 0.175, "neurons": None, "spikes": None, "synops": None,
                                      "energy": 0.28}
    return report


def run(path):
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=60)


def test_table_rows_ratios_and_provenance(tmp_path):
    complete = {**report(), "environment": {"python": "3.10", "torch": "2.14.1", "commit": "abc123",
                                            "command": "dpap run --out runs/demo"}}
    (tmp_path / "report.json").write_text(json.dumps(complete))
    result = run(tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "From `dpap run --out runs/demo` at commit abc123" in out
    assert "| dense | - | 0.9611 | 0.9611 | 1.0000 | 0.9511 | 0.9900 | 100864 | 30 | 1234 | 4780.3 nJ | 30.0 s |" in out
    assert "| dpap | 0.9500 | 0.9556 |" in out and "| 18.0 s |" in out
    # undefined ratios left out; the training time of the pruned model against the dense one's
    assert ("Pruned / dense per sample: synapses 0.175, energy 0.280; training time 0.600 (last epoch 6.00 s "
            "against 12.00 s).") in out
    assert "`fc1` 20 of 32" in out and "readout" not in out.split("Neurons kept per layer:")[1]


def test_no_validation_column_without_a_validation_split(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(report(validation=False)))
    result = run(tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    assert "validation acc." not in result.stdout and "at commit unknown" in result.stdout
    assert "| dense | 0.9611 | 0.9611 | 1.0000 |" in result.stdout


def test_a_file_that_is_not_a_report_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    result = run(tmp_path / "x.json")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not a finished run's report.json" in result.stderr and result.stdout == ""


def test_a_report_the_schema_refuses_is_one_line_naming_the_field(tmp_path):
    broken = report()
    del broken["models"]["dense"]["per_sample"]["synops"]
    (tmp_path / "report.json").write_text(json.dumps(broken))
    result = run(tmp_path / "report.json")
    assert result.returncode == 2 and "models.dense.per_sample.synops is missing" in result.stderr
