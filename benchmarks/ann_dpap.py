"""DPAP on ANNs, as the paper claims it works there too: the ReLU twins against gmp at equal sparsity.

Models ``ann-mlp`` / ``ann-conv`` (`dpap_neuro.models.ReLUNet`): the spiking
models' layers with ReLU instead of LIF, fed each input's spike rate; DPAP's
trace of an activation is the activation, through the same pruner code.
Phase 1 trains dense and DPAP (each candidate setting below) for every seed;
the DPAP setting with the best mean validation accuracy is kept. Phase 2
trains gmp to the share of hidden synapses that kept DPAP run masked, seed by
seed (gmp's schedule is chosen on validation as well). Test accuracy is
reported once, for the kept settings.

    python benchmarks/ann_dpap.py [--datasets digits-events digits] [--models ann-mlp ann-conv]
                                  [--seeds 0 1 2] [--epochs 20] [--workers 2] [--out DIR]

Prints per dataset and model: test accuracy (mean ± std over seeds), hidden
synapses and neurons kept, and DPAP minus gmp in points; writes every run
and the git commit to OUT/ann_dpap.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pareto import RESULTS, add_run_arguments, run_all  # noqa: E402  (the same worker: train, validate, test)

BATCHES = {"schedule_unit": "batches"}
DPAP_CANDIDATES = [
    {**BATCHES, "batches_per_unit": 5, "fc_neuron_c": 1.0},
    {**BATCHES, "batches_per_unit": 5, "fc_neuron_c": 1.0, "usage_over": "alive"},
    {**BATCHES, "batches_per_unit": 10},
]
GMP_CANDIDATES = [{"start_fraction": 0.1, "end_fraction": 0.7}, {"start_fraction": 0.2, "end_fraction": 0.8}]


def best(runs: list[dict]) -> list[dict]:
    """The runs of the option set with the best mean validation accuracy (over seeds).

    gmp's target differs per seed (each matches its seed's DPAP run), so it is not part of the option set.
    """
    by_options: dict[str, list[dict]] = {}
    for r in runs:
        settings = {k: v for k, v in r["options"].items() if k != "target_sparsity"}
        by_options.setdefault(json.dumps(settings, sort_keys=True), []).append(r)
    return max(by_options.values(), key=lambda group: np.mean([r["validation_accuracy"] for r in group]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, ("ann-mlp", "ann-conv"))
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for ann_dpap.json ({RESULTS})")
    args = parser.parse_args(argv)
    from dpap_neuro.provenance import source_commit

    commit = source_commit()  # of the code that runs, read before the hour of training that may follow

    cells = [(d, m) for d in args.datasets for m in args.models]

    def job(dataset, model, seed, method, pruner, options):
        return {"dataset": dataset, "model": model, "seed": seed, "epochs": args.epochs, "method": method,
                "strength": "-", "pruner": pruner, "options": options}

    first = [job(d, m, s, "dense", "none", {}) for d, m in cells for s in args.seeds]
    first += [job(d, m, s, "dpap", "dpap", o) for d, m in cells for s in args.seeds for o in DPAP_CANDIDATES]
    runs = run_all(first, args.workers)
    chosen = {cell: best([r for r in runs if (r["dataset"], r["model"]) == cell and r["method"] == "dpap"])
              for cell in cells}
    second = [job(r["dataset"], r["model"], r["seed"], "gmp", "gmp", {"target_sparsity": r["mask_sparsity"], **o})
              for group in chosen.values() for r in group for o in GMP_CANDIDATES]
    runs += run_all(second, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = {"commit": commit, "epochs": args.epochs, "seeds": args.seeds, "runs": runs}
    tmp = args.out / "ann_dpap.json.tmp"
    tmp.write_text(json.dumps(saved, indent=1) + "\n")
    tmp.replace(args.out / "ann_dpap.json")
    print(f"commit {saved['commit']}, {args.epochs} epochs, seeds {args.seeds}; runs in {args.out / 'ann_dpap.json'}")

    print(f"\n{'dataset':<14} {'model':<8} {'method':<6} {'test acc %':>14} {'syn. kept':>9} {'neur. kept':>10}  settings")
    for cell in cells:
        groups = {"dense": [r for r in runs if (r["dataset"], r["model"]) == cell and r["method"] == "dense"],
                  "dpap": chosen[cell],
                  "gmp": best([r for r in runs if (r["dataset"], r["model"]) == cell and r["method"] == "gmp"])}
        for method, group in groups.items():
            acc = [r["test_accuracy"] for r in group]
            settings = {k: v for k, v in group[0]["options"].items() if k != "target_sparsity"}
            print(f"{cell[0]:<14} {cell[1]:<8} {method:<6} {100 * np.mean(acc):7.2f} ± {100 * np.std(acc):4.2f} "
                  f"{np.mean([r['synapses_kept'] for r in group]):9.3f} "
                  f"{np.mean([r['neurons_kept'] for r in group]):10.3f}  {json.dumps(settings, sort_keys=True)}")
        diff = 100 * (np.mean([r["test_accuracy"] for r in groups["dpap"]])
                      - np.mean([r["test_accuracy"] for r in groups["gmp"]]))
        print(f"{cell[0]} {cell[1]}: dpap minus gmp at the same synapse sparsity: {diff:+.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
