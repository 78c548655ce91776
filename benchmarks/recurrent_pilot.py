"""One model, one seed, on a variant of digits-seq: the pilot runs behind docs/datasets.md's recurrence table.

    python benchmarks/recurrent_pilot.py MODEL [--recurrent-gain G] [--epochs 15] [--lr 5e-3]
                                         [--steps-per-column 8] [--silent-steps 0] [--hidden 128] [--seed 0]

MODEL is ``rmlp`` or ``mlp``. Each image column is shown for
``--steps-per-column`` steps (rate coded, as ``digits-seq``), then
``--silent-steps`` steps without input. ``--recurrent-gain``: the scale of
rmlp's recurrent weights at the start (``SpikingRecurrentMLP``). Trains on
80 % of digits-seq's training split (no pruning, one thread) and prints the
validation accuracy of the other 20 % on its last line:
``validation_accuracy: X``. ``benchmarks/recurrent.py`` is the comparison
itself (3 seeds, settings chosen on validation, test accuracy).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_COLUMNS = 8


def with_silence(data, steps_per_column: int, silent_steps: int):
    """``data`` (``[T, N, 8]``, ``T = 8 * steps_per_column``) with ``silent_steps`` empty steps after each column."""
    import torch

    from dpap_neuro.data import SpikeDataset

    if silent_steps == 0:
        return data
    _, n, width = data.spikes.shape
    columns = data.spikes.view(N_COLUMNS, steps_per_column, n, width)
    padded = torch.cat([columns, torch.zeros(N_COLUMNS, silent_steps, n, width)], dim=1)
    return SpikeDataset(padded.reshape(N_COLUMNS * (steps_per_column + silent_steps), n, width), data.labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=("rmlp", "mlp"))
    parser.add_argument("--recurrent-gain", type=float, default=None, help="rmlp only (default: the model's)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--steps-per-column", type=int, default=8)
    parser.add_argument("--silent-steps", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from dpap_neuro.config import RunConfig
    from dpap_neuro.experiment import load_splits
    from dpap_neuro.models import SpikingRecurrentMLP, build_model
    from dpap_neuro.pruning import Pruner
    from dpap_neuro.train import Recipe, evaluate, train

    torch.set_num_threads(1)
    config = RunConfig(dataset="digits-seq", model=args.model, epochs=args.epochs, hidden_sizes=(args.hidden,),
                       learning_rate=args.lr, val_fraction=0.2, timesteps=N_COLUMNS * args.steps_per_column,
                       seed=args.seed)
    splits = load_splits(config)
    train_data, validation = (with_silence(d, args.steps_per_column, args.silent_steps)
                              for d in (splits.train, splits.validation))
    torch.manual_seed(args.seed)
    if args.model == "rmlp" and args.recurrent_gain is not None:
        model = SpikingRecurrentMLP((N_COLUMNS,), (args.hidden,), 10, recurrent_gain=args.recurrent_gain)
    else:
        model = build_model((N_COLUMNS,), (args.hidden,), 10, architecture=args.model)
    start = time.perf_counter()
    train(model, train_data, Pruner(), Recipe.from_config(config), progress=False)
    accuracy = evaluate(model, validation, keep_spikes=False).accuracy
    print(f"{args.model}: {time.perf_counter() - start:.0f} s of training")
    print(f"validation_accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
