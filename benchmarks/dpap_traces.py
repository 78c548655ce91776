"""How well each DPAP trace follows a unit's spike count, on digits-events (issue #20, item 2).

DPAP ranks units by a per-sample trace ``x`` of their spikes. The authors'
``e(T)/T`` (``trace="final"``) weighs the last steps of a sample most (with
decay 0.5, 87.5 % of it comes from the last three of 30 steps); the
whole-window trace (``trace="mean"``, the mean of ``e(t)``) weighs every
step alike. This trains a dense MLP and a dense conv net briefly on the
training split, runs them over it, and prints, per hidden population:

* ``per-sample r``: the Pearson correlation, over samples, between a unit's
  trace and its spike count in that sample, averaged over the units that
  fired (does the trace see what the unit did in the sample?);
* ``unit-rank rho``: the Spearman correlation, over units, between the
  trace summed over samples (DPAP's activity ``A_i``) and the spike count
  summed over samples (does it rank units as their spikes would?).

    nice -n 10 python benchmarks/dpap_traces.py --epochs 5 --seed 0
"""

from __future__ import annotations

import argparse
import warnings

# (label, trace kind, decay): the authors' trace, the whole-window one, and a slowly decaying e(T).
TRACES = (("final, decay 0.5 (authors)", "final", 0.5), ("mean, decay 0.5", "mean", 0.5),
          ("final, decay 0.9", "final", 0.9))


def ranks(values):
    """Ranks 0..n-1 (ties broken by position: enough for a correlation of continuous sums)."""
    import torch

    order = torch.argsort(values, stable=True)
    out = torch.empty_like(values)
    out[order] = torch.arange(values.numel(), dtype=values.dtype)
    return out


def pearson(a, b) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")


def correlations(spikes, kind: str, decay: float) -> tuple[float, float]:
    """``(mean per-sample r over units that fired, unit-rank rho)`` of one population ``[T, N, ...]``."""
    from dpap_neuro.pruning.dpap_functional import spike_counts, spike_trace

    spikes = spikes.double()
    trace, counts = spike_trace(spikes, decay, kind), spike_counts(spikes)  # [N, n]
    per_unit = [pearson(trace[:, i], counts[:, i]) for i in range(counts.shape[1]) if counts[:, i].std() > 0]
    per_sample = sum(per_unit) / len(per_unit) if per_unit else float("nan")
    return per_sample, pearson(ranks(trace.sum(dim=0)), ranks(counts.sum(dim=0)))


def trained_spikes(model_kind: str, epochs: int, seed: int):
    """Hidden spikes ``[T, N, ...]`` per population of a briefly trained dense model, over the training split."""
    import torch

    from dpap_neuro.config import RunConfig
    from dpap_neuro.data import N_CLASSES, load_dataset, split_validation
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import Pruner
    from dpap_neuro.train import Recipe, evaluate, train

    config = RunConfig(dataset="digits-events", model=model_kind, epochs=epochs, seed=seed, val_fraction=0.1)
    train_data, _ = load_dataset(config.dataset, config.timesteps, seed, config.test_fraction)
    train_data, _ = split_validation(train_data, config.val_fraction, seed)
    torch.manual_seed(seed)
    model = build_model(train_data.input_shape, config.hidden_sizes, N_CLASSES, **config.model_kwargs())
    train(model, train_data, Pruner(), Recipe.from_config(config), progress=False)
    return evaluate(model, train_data).layer_spikes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["mlp", "conv"], choices=("mlp", "conv"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    print(f"digits-events, dense models trained {args.epochs} epochs (seed {args.seed}), over the training split")
    print("| model | population | trace | per-sample r | unit-rank rho |")
    print("|---|---|---|---|---|")
    for model_kind in args.models:
        for index, spikes in enumerate(trained_spikes(model_kind, args.epochs, args.seed)):
            for label, kind, decay in TRACES:
                per_sample, rank_rho = correlations(spikes, kind, decay)
                print(f"| {model_kind} | {index} {tuple(spikes.shape[2:])} | {label} | {per_sample:.3f} | "
                      f"{rank_rho:.3f} |", flush=True)


if __name__ == "__main__":
    main()
