"""Print the README's demo table from a run's report.json (so the README shows what `make demo` wrote).

    python tools/demo_table.py [runs/demo/report.json]

Prints the markdown table, the pruned/dense ratios and the per-layer
neurons kept, headed by the run's provenance (dataset, split sizes, commit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _seconds(model: dict) -> str:
    seconds = model.get("training", {}).get("wall_time_s")
    return "–" if seconds is None else f"{seconds:.1f} s"


def table(report: dict) -> str:
    dataset = report["dataset"]
    env = report.get("environment", {})
    # The validation column only where the run held a validation split out (`--val-fraction`).
    has_validation = any("validation" in m["accuracy"] for m in report["models"].values())
    lines = [f"From `{env.get('command', 'dpap run')}` at commit {env.get('commit', 'unknown')} "
             f"(dataset `{dataset['name']}`: {dataset['n_train']} training, {dataset.get('n_validation', 0)} "
             f"validation and {dataset['n_test']} test samples, {dataset['timesteps']} steps):", "",
             "| model |" + (" validation acc. |" if has_validation else "") + " Norse acc. | Lava acc. | "
             "spike agreement | Loihi fixed-pt acc. | fixed-pt prediction agreement | synapses | neurons | "
             "synops/sample | Loihi energy/sample | training time |",
             "|---|" + ("---|" if has_validation else "") + "---|---|---|---|---|---|---|---|---|---|"]
    for name, m in report["models"].items():
        validation = m["accuracy"].get("validation")
        validation_cell = (" - |" if validation is None else f" {validation:.4f} |") if has_validation else ""
        lines.append(
            f"| {name} |{validation_cell} {m['accuracy']['norse']:.4f} | "
            f"{m['accuracy']['lava']:.4f} | {m['agreement']['spikes']:.4f} | {m['fixed']['accuracy']:.4f} | "
            f"{m['fixed']['agreement']['predictions']:.4f} | {m['synapses']} | {m['neurons']} | "
            f"{m['per_sample']['synops']:.0f} | {m['per_sample']['energy_j']['loihi'] * 1e9:.1f} nJ | "
            f"{_seconds(m)} |")
    ratios = report["comparison"]["ratios"]
    baseline, pruned_name = report["comparison"]["baseline"], report["comparison"]["pruned"]
    times = [report["models"][name].get("training", {}) for name in (baseline, pruned_name)]
    timed = all(t.get("wall_time_s") and t.get("epoch_time_s") for t in times)
    lines += ["", "Pruned / dense per sample: " + ", ".join(
        f"{key} {value:.3f}" for key, value in ratios.items() if value is not None) + (
        f"; training time {times[1]['wall_time_s'] / times[0]['wall_time_s']:.3f} (last epoch "
        f"{times[1]['epoch_time_s'][-1]:.2f} s against {times[0]['epoch_time_s'][-1]:.2f} s)" if timed else "") + "."]
    pruned = report["models"][report["comparison"]["pruned"]]
    lines.append("Neurons kept per layer: " + ", ".join(
        f"`{layer['name']}` {layer['neurons']} of {layer['original_neurons']}" for layer in pruned["layers"][:-1]) + ".")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from hw_export.report import RunReport, check

    path = Path(argv[0] if argv else "runs/demo/report.json")
    try:
        report = json.loads(path.read_text())
        check(report, RunReport, source=str(path))  # the schema every reader checks (hw_export/report.py)
        if "fixed" not in next(iter(report["models"].values())):
            raise ValueError(f"{path}: not a `dpap run` report (no fixed-point runs)")
        print(table(report))
    except (OSError, ValueError) as exc:  # json.JSONDecodeError and UserError are ValueErrors
        print(f"demo_table: not a finished run's report.json: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
