"""``dpap run``: train dense and pruned models, export, simulate in Lava, compare.

The run directory holds ``config.json``, ``<model>.pt`` (checkpoint),
``<model>.h5`` (SparseNet), ``report.json`` and ``report.md``; model names are
the keys of ``report.json``'s ``models``. Every file is written atomically.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from dpap_neuro.checkpoint import save_checkpoint
from dpap_neuro.config import RunConfig
from dpap_neuro.data import N_CLASSES, SpikeDataset, load_dataset
from dpap_neuro.models import build_model, predict
from dpap_neuro.pruning import make_pruner
from dpap_neuro.train import Evaluation, evaluate, train
from hw_export.counting import count_operations
from hw_export.energy import PROFILES, energy_breakdown_j, load_profile
from hw_export.fidelity import spike_agreement
from hw_export.h5io import atomic_write_text, write_sparsenet
from hw_export.lava_process import simulate_in_subprocess
from hw_export.sparsenet import SparseNet, from_norse

SCHEMA_VERSION = 1
DENSE = "dense"


def run(config: RunConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Run the whole pipeline; returns the report that is also written to ``out_dir``."""
    if config.pruner == "none":
        raise ValueError("the dense model is always trained; choose a pruner other than 'none'")
    profiles = resolve_profiles(config.energy_profile)
    default_profile = config.energy_profile if config.energy_profile in PROFILES else list(profiles)[-1]
    make_pruner(config.pruner, **config.resolved_pruner_options())  # fail on bad options before any training
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")

    train_data, test_data = load_dataset(config.dataset, config.timesteps, config.seed, config.test_fraction)
    models = {}
    for model_name, pruner_name in ((DENSE, "none"), (config.pruner, config.pruner)):
        options = config.resolved_pruner_options() if pruner_name == config.pruner else {}
        models[model_name] = train_and_assess(config, model_name, pruner_name, options,
                                              train_data, test_data, out_dir, progress, profiles)
    report = {
        "schema_version": SCHEMA_VERSION,
        "dataset": {"name": config.dataset, "n_train": len(train_data), "n_test": len(test_data),
                    "timesteps": config.timesteps},
        "models": models,
        "comparison": compare(models, DENSE, config.pruner, default_profile),
        "energy_profile": default_profile,
        "energy_profiles": {name: profile.to_dict() for name, profile in profiles.items()},
        "environment": {"python": platform.python_version(), "torch": torch.__version__},
    }
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    return report


def resolve_profiles(name_or_file: str) -> dict:
    """The built-in energy profiles, plus one from a JSON/TOML file if one is named."""
    profiles = dict(PROFILES)
    if name_or_file not in PROFILES:
        if not Path(name_or_file).suffix:
            raise ValueError(f"unknown energy profile {name_or_file!r}; choose one of {', '.join(PROFILES)} "
                             "or give a .json/.toml file")
        custom = load_profile(name_or_file)
        profiles[custom.name] = custom
    return profiles


def train_and_assess(config: RunConfig, model_name: str, pruner_name: str, pruner_options: dict,
                     train_data: SpikeDataset, test_data: SpikeDataset, out_dir: Path, progress: bool,
                     profiles: dict | None = None) -> dict:
    """Train one model, export it, simulate it in Lava and measure it: one ``models`` entry."""
    torch.manual_seed(config.seed)  # same initial weights for every model of the run
    model = build_model(train_data.input_shape, config.hidden_sizes, N_CLASSES, **config.model_kwargs())
    pruner = make_pruner(pruner_name, **pruner_options)
    history = train(model, train_data, pruner, config.epochs, config.batch_size, config.learning_rate,
                    config.seed, progress=progress, description=f"train {model_name}")
    history_dict = {"loss": history.loss, "train_accuracy": history.train_accuracy,
                    "sparsity": history.sparsity, "neuron_sparsity": history.neuron_sparsity,
                    "wall_time_s": history.wall_time_s}
    save_checkpoint(out_dir / f"{model_name}.pt", model, config, model_name, pruner_name,
                    train_data.input_shape, N_CLASSES, history_dict)

    norse = evaluate(model, test_data)
    net = from_norse(list(model), train_data.input_shape, metadata=artifact_metadata(config, model_name, pruner_name))
    net_path = out_dir / f"{model_name}.h5"
    write_sparsenet(net, net_path)
    entry = {"pruner": pruner_name, "pruner_options": pruner_options}
    entry.update(assess_in_lava(net, net_path, test_data, norse, "float", config.lava_batch_size, progress, profiles))
    fixed = assess_in_lava(net, net_path, test_data, norse, "fixed", config.lava_batch_size, progress, profiles)
    entry["fixed"] = {key: fixed[key] for key in ("accuracy", "agreement", "per_sample")}
    entry["fixed"]["accuracy"] = fixed["accuracy"]["lava"]
    entry["training"] = history_dict
    entry["files"] = {"checkpoint": f"{model_name}.pt", "network": f"{model_name}.h5"}
    return entry


def assess_in_lava(net: SparseNet, net_path: Path, test_data: SpikeDataset, norse: Evaluation | None,
                   precision: str, batch_size: int, progress: bool, profiles: dict | None = None) -> dict:
    """Simulate ``net`` in Lava on ``test_data``; accuracy, agreement with Norse (if given), counts."""
    inputs = test_data.spikes.flatten(2).numpy().astype(np.uint8)  # [T, N, n_inputs]
    lava = simulate_in_subprocess(net_path, inputs, batch_size=batch_size, progress=progress, precision=precision)
    lava_predictions = predict(torch.from_numpy(lava.readout_v)).numpy()
    labels = test_data.labels.numpy()
    counts = count_operations(net, inputs, lava.layer_spikes)
    profiles = profiles or PROFILES
    breakdown = {name: {kind: float(value.mean()) for kind, value in energy_breakdown_j(counts, profile).items()}
                 for name, profile in profiles.items()}
    spikes = sum(c.spikes for c in counts)
    neuron_updates = sum(c.neuron_updates for c in counts)
    original_synapses = sum(layer.n_original * fan_in for layer, fan_in in zip(net.layers, original_fan_ins(net)))
    report = {
        "precision": precision,
        "accuracy": {"lava": float((lava_predictions == labels).mean())},
        "synapses": net.n_synapses,
        "neurons": net.n_neurons,
        "per_sample": {
            "spikes": float(sum(c.spikes for c in counts).mean()),
            "input_spikes": float(inputs.sum(axis=(0, 2)).mean()),
            "synops": float(sum(c.synops for c in counts).mean()),
            "neuron_updates": float(sum(c.neuron_updates for c in counts).mean()),
            "energy_j": {name: sum(parts.values()) for name, parts in breakdown.items()},
            "energy_breakdown_j": breakdown,
        },
        # NeuroBench's names (Yik et al., "NeuroBench", 2023/2025) where they exist.
        "neurobench": {
            "connection_sparsity": 1.0 - net.n_synapses / original_synapses,
            "activation_sparsity": float(1.0 - spikes.sum() / max(1, neuron_updates.sum())),
            "synaptic_operations": {"effective_acs": float(sum(c.synops for c in counts).mean()),
                                    "effective_macs": 0.0,
                                    "dense": float(sum(c.dense_macs for c in counts).mean())},
            "memory_footprint_bytes": memory_footprint_bytes(net),
            "neuron_updates": float(neuron_updates.mean()),
        },
        "layers": [
            {"name": c.name, "neurons": c.neurons, "original_neurons": layer.n_original,
             "synapses": c.synapses, "original_synapses": layer.n_original * original_fan_in,
             "spikes": float(c.spikes.mean()), "synops": float(c.synops.mean()),
             "neuron_updates": float(c.neuron_updates.mean())}
            for c, layer, original_fan_in in zip(counts, net.layers, original_fan_ins(net))
        ],
    }
    if norse is not None:
        agreement = spike_agreement(net, [s.flatten(2).numpy() for s in norse.layer_spikes], lava.layer_spikes)
        report["accuracy"] = {"norse": norse.accuracy, "lava": report["accuracy"]["lava"]}
        report["agreement"] = {"spikes": agreement.elementwise,
                               "predictions": float((lava_predictions == norse.predictions.numpy()).mean()),
                               "samples_identical": agreement.samples_identical}
    return report


def memory_footprint_bytes(net: SparseNet) -> int:
    """Bytes to store the network's parameters as CSR float32 (values, int32 indices and row pointers)."""
    total = 0
    for layer in net.layers:
        total += layer.n_synapses * (4 + 4) + (layer.n_out + 1) * 4
    return total


def artifact_metadata(config: RunConfig, model_name: str, pruner_name: str) -> dict:
    """What a SparseNet file records of its run (lets `dpap simulate` rebuild the same test split)."""
    return {"model": model_name, "pruner": pruner_name, "dataset": config.dataset,
            "timesteps": config.timesteps, "seed": config.seed, "test_fraction": config.test_fraction}


def original_fan_ins(net) -> list[int]:
    """Inputs per neuron of each layer before pruning (the trained layer widths)."""
    return [net.n_inputs] + [layer.n_original for layer in net.layers[:-1]]


def compare(models: dict, baseline: str, pruned: str, profile: str) -> dict:
    base, other = models[baseline], models[pruned]

    def ratio(a: float, b: float) -> float:
        return float(b / a) if a else float("nan")

    return {
        "baseline": baseline,
        "pruned": pruned,
        "ratios": {
            "synapses": ratio(base["synapses"], other["synapses"]),
            "neurons": ratio(base["neurons"], other["neurons"]),
            "spikes": ratio(base["per_sample"]["spikes"], other["per_sample"]["spikes"]),
            "synops": ratio(base["per_sample"]["synops"], other["per_sample"]["synops"]),
            "energy": ratio(base["per_sample"]["energy_j"][profile], other["per_sample"]["energy_j"][profile]),
        },
    }


def render_markdown(report: dict) -> str:
    ds = report["dataset"]
    profile = report["energy_profile"]
    lines = [
        "# dpap-neuro run report",
        "",
        f"Dataset `{ds['name']}`: {ds['n_train']} training and {ds['n_test']} test samples, "
        f"{ds['timesteps']} steps each. Lava numbers come from simulating every test sample; "
        f"energy uses the `{profile}` profile.",
        "",
        "| model | pruner | Norse acc. | Lava acc. | spike agreement | prediction agreement "
        "| Loihi fixed-pt acc. | fixed-pt prediction agreement | synapses | neurons "
        "| spikes/sample | synops/sample | energy/sample |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        lines.append(
            f"| {name} | {m['pruner']} | {m['accuracy']['norse']:.4f} | {m['accuracy']['lava']:.4f} "
            f"| {m['agreement']['spikes']:.4f} | {m['agreement']['predictions']:.4f} "
            f"| {m['fixed']['accuracy']:.4f} | {m['fixed']['agreement']['predictions']:.4f} | {m['synapses']} "
            f"| {m['neurons']} | {m['per_sample']['spikes']:.1f} | {m['per_sample']['synops']:.0f} "
            f"| {m['per_sample']['energy_j'][profile] * 1e9:.1f} nJ |"
        )
    lines += ["", "## Energy per sample by profile", "",
              "| model | " + " | ".join(report["energy_profiles"]) + " |",
              "|---|" + "---|" * len(report["energy_profiles"])]
    for name, m in report["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m['per_sample']['energy_j'][p] * 1e9:.1f} nJ"
                                                  for p in report["energy_profiles"]) + " |")
    lines += ["", "Sources: " + "; ".join(f"`{n}`: {p['source']}" for n, p in report["energy_profiles"].items())]
    cmp_ = report["comparison"]
    lines += ["", f"## {cmp_['pruned']} / {cmp_['baseline']} (per sample)", "",
              "| synapses | neurons | spikes | synops | energy |", "|---|---|---|---|---|",
              "| " + " | ".join(f"{cmp_['ratios'][k]:.3f}" for k in ("synapses", "neurons", "spikes", "synops", "energy"))
              + " |", ""]
    for name, m in report["models"].items():
        lines += [f"## Layers of `{name}`", "",
                  "| layer | neurons (of) | synapses (of) | spikes/sample | synops/sample |",
                  "|---|---|---|---|---|"]
        for layer in m["layers"]:
            lines.append(f"| {layer['name']} | {layer['neurons']} ({layer['original_neurons']}) "
                         f"| {layer['synapses']} ({layer['original_synapses']}) | {layer['spikes']:.1f} "
                         f"| {layer['synops']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def simulate_artifact(artifact: str | Path, dataset: str, precision: str = "float", timesteps: int | None = None,
                      seed: int | None = None, checkpoint: str | Path | None = None, batch_size: int = 128,
                      progress: bool = True) -> dict:
    """``dpap simulate``: run an exported SparseNet in Lava on a built-in test split.

    Timesteps, seed and split default to those stored in the artifact's
    metadata, so the test split is the one the model was assessed on. With a
    Norse checkpoint (``checkpoint``, or ``<artifact>.pt`` beside it), the
    report also has Norse accuracy and spike / prediction agreement.
    """
    from dpap_neuro.checkpoint import load_checkpoint
    from hw_export.h5io import read_sparsenet

    artifact = Path(artifact)
    net = read_sparsenet(artifact)
    meta = net.metadata
    timesteps = int(timesteps if timesteps is not None else meta.get("timesteps", 30))
    seed = int(seed if seed is not None else meta.get("seed", 0))
    _, test_data = load_dataset(dataset, timesteps, seed, float(meta.get("test_fraction", 0.2)))
    if tuple(test_data.input_shape) != tuple(net.input_shape):
        raise ValueError(f"{artifact}: the network takes inputs of shape {net.input_shape}, "
                         f"dataset {dataset} gives {tuple(test_data.input_shape)}")
    norse = None
    checkpoint = Path(checkpoint) if checkpoint else artifact.with_suffix(".pt")
    if checkpoint.is_file():
        model, _ = load_checkpoint(checkpoint)
        norse = evaluate(model, test_data)
    report = {"artifact": str(artifact), "checkpoint": str(checkpoint) if norse is not None else None,
              "dataset": {"name": dataset, "n_test": len(test_data), "timesteps": timesteps, "seed": seed},
              "model": meta.get("model"), "pruner": meta.get("pruner")}
    report.update(assess_in_lava(net, artifact, test_data, norse, precision, batch_size, progress))
    return report
