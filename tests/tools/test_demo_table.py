"""tools/demo_table.py prints the README's demo table from a run's report.json."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "demo_table.py"


def model(accuracy, synapses, energy_j, validation=None):
    acc = {"norse": accuracy, "lava": accuracy, **({} if validation is None else {"validation": validation})}
    return {"accuracy": acc, "agreement": {"spikes": 1.0, "predictions": 1.0},
            "fixed": {"accuracy": accuracy - 0.01, "agreement": {"predictions": 0.99}},
            "synapses": synapses, "neurons": 30, "per_sample": {"synops": 1234.4, "energy_j": {"loihi": energy_j}},
            "layers": [{"name": "fc1", "neurons": 20, "original_neurons": 32}, {"name": "readout", "neurons": 10,
                                                                               "original_neurons": 10}]}


def run(path):
    return subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=60)


def test_table_rows_ratios_and_provenance(tmp_path):
    report = {"dataset": {"name": "digits-events", "n_train": 1437, "n_validation": 0, "n_test": 360, "timesteps": 30},
              "models": {"dense": model(0.9611, 100864, 4.7803e-6), "dpap": model(0.9556, 17686, 1.3375e-6, 0.95)},
              "comparison": {"pruned": "dpap", "ratios": {"synapses": 0.175, "energy": 0.28, "spikes": None}},
              "environment": {"commit": "abc123", "command": "dpap run --out runs/demo"}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    result = run(tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "From `dpap run --out runs/demo` at commit abc123" in out
    assert "| dense | - | 0.9611 | 0.9611 | 1.0000 | 0.9511 | 0.9900 | 100864 | 30 | 1234 | 4780.3 nJ |" in out
    assert "| dpap | 0.9500 | 0.9556 |" in out
    assert "Pruned / dense per sample: synapses 0.175, energy 0.280." in out  # undefined ratios left out
    assert "`fc1` 20 of 32" in out and "readout" not in out.split("Neurons kept per layer:")[1]


def test_no_validation_column_without_a_validation_split(tmp_path):
    report = {"dataset": {"name": "digits", "n_train": 1437, "n_test": 360, "timesteps": 8},
              "models": {"dense": model(0.9611, 100864, 4.7803e-6), "dpap": model(0.9556, 17686, 1.3375e-6)},
              "comparison": {"pruned": "dpap", "ratios": {"synapses": 0.175}}, "environment": {}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    result = run(tmp_path / "report.json")
    assert result.returncode == 0, result.stderr
    assert "validation acc." not in result.stdout and "at commit unknown" in result.stdout
    assert "| dense | 0.9611 | 0.9611 | 1.0000 |" in result.stdout


def test_a_file_that_is_not_a_report_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    result = run(tmp_path / "x.json")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not a finished run's report.json" in result.stderr and result.stdout == ""
