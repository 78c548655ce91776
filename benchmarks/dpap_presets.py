"""DPAP settings on a validation split: accuracy, channels / neurons / synapses kept, spikes per sample.

How the ``builtin`` preset's values were chosen (docs/dpap.md, "Presets").
Each setting is a name and the DPAP options over a preset; every run trains
on the training split minus a stratified 10 % held out for validation and is
measured on that validation split (never on the test split). ``dense`` is
the unpruned model trained the same way.

    nice -n 10 python benchmarks/dpap_presets.py --model conv --seeds 0 \\
        --setting builtin='{"preset": "builtin"}' \\
        --setting c1.5='{"preset": "builtin", "conv_channel_c": 1.5}'

Prints one JSON line per run and a table at the end; ``--out FILE`` appends
the JSON lines there as well.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import warnings

VAL_FRACTION = 0.1


def one_run(job: dict) -> dict:
    """Train one model on digits-events and measure it on the validation split (one thread)."""
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    from dpap_neuro.config import RunConfig
    from dpap_neuro.data import N_CLASSES, load_dataset, split_validation
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import make_pruner
    from dpap_neuro.pruning.base import units_alive
    from dpap_neuro.train import Recipe, evaluate, train

    config = RunConfig(dataset=job["dataset"], model=job["model"], epochs=job["epochs"], seed=job["seed"],
                       val_fraction=VAL_FRACTION)
    train_data, _ = load_dataset(config.dataset, config.timesteps, config.seed, config.test_fraction)
    train_data, val_data = split_validation(train_data, config.val_fraction, config.seed)
    torch.manual_seed(config.seed)
    model = build_model(train_data.input_shape, config.hidden_sizes, N_CLASSES, **config.model_kwargs())
    pruner = make_pruner(job["pruner"], **job["options"])
    history = train(model, train_data, pruner, Recipe.from_config(config), progress=False)
    result = evaluate(model, val_data)
    spikes = sum(float(s.sum()) for s in result.layer_spikes) / len(val_data)
    masks = pruner.masks()  # at the built shapes (the model itself is compacted)
    alive = [int(units_alive(m).sum()) for m in masks]
    return {**{k: job[k] for k in ("name", "model", "seed", "options")},
            "validation_accuracy": result.accuracy, "spikes_per_sample": spikes,
            "conv_channels_kept": 1.0 - pruner.neuron_sparsity(conv_only=True),
            "units_kept": alive, "units": [m.shape[0] for m in masks],
            "synapses_kept": 1.0 - pruner.sparsity(), "decisions": getattr(pruner, "decisions", 0),
            "train_wall_time_s": history.wall_time_s, "forward_macs": sum(history.epoch_forward_macs)}


def parse_setting(text: str) -> tuple[str, dict]:
    name, _, options = text.partition("=")
    if not name or not options:
        raise SystemExit(f"--setting {text!r}: expected NAME=JSON")
    return name, json.loads(options)


def table(rows: list[dict]) -> str:
    lines = ["| setting | seed | validation % | conv channels kept | units kept | synapses kept | spikes / sample |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['seed']} | {100 * r['validation_accuracy']:.2f} | "
                     f"{r['conv_channels_kept']:.3f} | {'/'.join(map(str, r['units_kept']))} | "
                     f"{r['synapses_kept']:.3f} | {r['spikes_per_sample']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="conv", choices=("conv", "mlp"))
    parser.add_argument("--dataset", default="digits-events", choices=("digits-events", "digits"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--setting", action="append", default=[], type=parse_setting,
                        help="NAME=JSON options of the dpap pruner (repeatable)")
    parser.add_argument("--no-dense", action="store_true", help="skip the dense model")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    jobs = [] if args.no_dense else [{"name": "dense", "pruner": "none", "options": {}}]
    jobs += [{"name": name, "pruner": options.pop("pruner", "dpap"), "options": options}
             for name, options in args.setting]
    jobs = [{**job, "model": args.model, "dataset": args.dataset, "epochs": args.epochs, "seed": seed}
            for seed in args.seeds for job in jobs]
    rows = []
    with cf.ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context("spawn")) as pool:
        for row in pool.map(one_run, jobs):
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
            rows.append(row)
    print(table(rows))


if __name__ == "__main__":
    main()
