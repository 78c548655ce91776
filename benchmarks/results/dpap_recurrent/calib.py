"""DPAP settings for a recurrent net (rmlp on digits-seq), validation only, 3 seeds (docs/dpap.md, "Recurrent networks").

    python benchmarks/results/dpap_recurrent/calib.py '[{"fc_neuron_c": 0.5, "fc_synapse_c": 0.5, "synapse_score": "bcm*magnitude"}]'

Each option set is given over the `builtin` preset; every trial is cached in trials/ (a rerun reads them)."""
import json, sys
from pathlib import Path
from dpap_neuro.config import RunConfig
from dpap_neuro.tune import TrialCache, run_trials, trial_spec
variants = json.loads(sys.argv[1])
base = RunConfig(dataset="digits-seq", model="rmlp", epochs=15, hidden_sizes=(128,), learning_rate=5e-3,
                 val_fraction=0.2, pruner_preset="builtin").to_dict()  # the options are over `builtin`
specs = [trial_spec(base, 1, "dpap", json.dumps(v, sort_keys=True), seed, options=v) for v in variants for seed in (0, 1, 2)]
def show(r):
    print(r["strength"], "seed", r["seed"], "val %.4f" % r["validation_accuracy"], "rec kept %.3f" % r.get("recurrent_synapses_kept", -1),
          "syn kept %.3f" % r["synapses_kept"], "neurons kept %.3f" % r["neurons_kept"], "energy %.3g" % r["energy_j"]["loihi"],
          "t %.0f s" % r["training_time_s"], flush=True)
if __name__ == "__main__":
    run_trials(specs, TrialCache(Path(__file__).parent / "trials"), 1, show)
