"""Training wall time of DPAP over dense training of the same model, in one run.

Both trainings use the same data, seed, epochs and thread count, one after
the other in this process, alternating order over repeats so that neither
always runs on a cold or warm machine. The ratio is total DPAP time over
total dense time.

    python benchmarks/overhead.py [--dataset digits-events] [--epochs 5] [--repeats 2]

Last line: ``dpap_overhead_ratio: X``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings


def main() -> int:
    warnings.filterwarnings("ignore")
    import torch

    from dpap_neuro.config import RunConfig
    from dpap_neuro.data import N_CLASSES, load_dataset
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import make_pruner
    from dataclasses import replace

    from dpap_neuro.train import Recipe, train

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits-events")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = RunConfig(dataset=args.dataset, epochs=args.epochs, pruner="dpap")
    train_data, _ = load_dataset(config.dataset, config.timesteps, config.seed)
    # One untimed epoch first: the very first training in a process pays for
    # allocator and kernel warm-up, which would bias whichever method runs first.
    torch.manual_seed(config.seed)
    warm = build_model(train_data.input_shape, config.hidden_sizes, N_CLASSES, **config.model_kwargs())
    train(warm, train_data, make_pruner("none"), replace(Recipe.from_config(config), epochs=1), progress=False)
    totals = {"none": 0.0, "dpap": 0.0}
    for repeat in range(args.repeats):
        order = ["none", "dpap"] if repeat % 2 == 0 else ["dpap", "none"]
        for name in order:
            torch.manual_seed(config.seed)
            model = build_model(train_data.input_shape, config.hidden_sizes, N_CLASSES, **config.model_kwargs())
            options = config.resolved_pruner_options() if name == "dpap" else {}
            pruner = make_pruner(name, **options)
            started = time.perf_counter()
            train(model, train_data, pruner, Recipe.from_config(config), progress=False)
            elapsed = time.perf_counter() - started
            totals[name] += elapsed
            print(f"repeat {repeat}: {name:<5} {elapsed:7.2f} s for {config.epochs} epochs "
                  f"(final synapse sparsity {pruner.sparsity():.3f})", flush=True)
    print(f"dense total {totals['none']:.2f} s, dpap total {totals['dpap']:.2f} s "
          f"({args.repeats} repeats, {args.threads} thread(s), hidden {config.hidden_sizes})")
    print(f"dpap_overhead_ratio: {totals['dpap'] / totals['none']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
