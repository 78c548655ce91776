"""report.md, figures/*.png and a self-contained report.html from a run's report.

Figures (matplotlib, written to ``DIR/figures``): spike rasters of one test
sample, dense beside pruned; spikes and synaptic operations per layer;
energy by operation kind for each profile; each layer's sparsity over
training; accuracy against energy for every model. ``report.html`` embeds
them as data URIs, so the one file is the whole report. Both report.md and
report.html render the same list of blocks (``report_blocks``).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hw_export.files import atomic_write, atomic_write_text

FIGURES = {
    "rasters": "Spikes of one test sample (input and every LIF layer, Lava float run), model by model",
    "layers": "Spikes and synaptic operations per layer and sample",
    "energy": "Energy per sample by operation kind, for each hardware profile",
    "sparsity": "Pruned share of each prunable layer's synapses over training",
    "accuracy_energy": "Test accuracy against energy per sample (default profile; hollow: Loihi fixed point)",
    "training_time": "Training time and forward multiply-accumulates per epoch, model by model (a compacted model "
                     "gets faster as pruning removes its units)",
    "tune": "dpap tune: validation accuracy against energy per sample, each pruner's trials, the budget and the pick",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> bool:
    """Lay out, write atomically as PNG, close; True (the figure was drawn)."""
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"), suffix=".png")
    _plt().close(fig)
    return True


def figure_rasters(report: dict, out_dir: Path, path: Path) -> bool:
    rasters = {}
    for name in report["models"]:
        raster_file = out_dir / f"{name}-raster.npz"
        if raster_file.is_file():
            with np.load(raster_file) as data:
                rasters[name] = {k: data[k] for k in data.files if k != "readout_v"}
    if not rasters:
        return False
    plt = _plt()
    rows = max(len(r) for r in rasters.values())
    fig, axes = plt.subplots(rows, len(rasters), figsize=(5 * len(rasters), 2.0 * rows), squeeze=False)
    for col, (name, layers) in enumerate(rasters.items()):
        for row, (layer, spikes) in enumerate(layers.items()):
            ax = axes[row, col]
            steps, neurons = np.nonzero(spikes)
            ax.scatter(steps, neurons, s=2, color="black")
            ax.set_xlim(-0.5, spikes.shape[0] - 0.5)
            ax.set_ylim(-0.5, max(1, spikes.shape[1]) - 0.5)
            label = layer.replace("layer_", "")
            ax.set_title(f"{name}: {label} ({spikes.shape[1]} neurons, {int(spikes.sum())} spikes)", fontsize=9)
            ax.set_ylabel("neuron")
        axes[-1, col].set_xlabel("step")
    return _save(fig, path)


def figure_layers(report: dict, path: Path) -> bool:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    models = list(report["models"].items())
    width = 0.8 / max(1, len(models))
    for index, (name, model) in enumerate(models):
        layers = model["layers"]
        x = np.arange(len(layers)) + index * width
        axes[0].bar(x, [layer["spikes"] for layer in layers], width, label=name)
        axes[1].bar(x, [layer["synops"] for layer in layers], width, label=name)
    for ax, title in zip(axes, ("spikes / sample", "synaptic operations / sample")):
        names = [layer["name"] for layer in models[0][1]["layers"]]
        ax.set_xticks(np.arange(len(names)) + width * (len(models) - 1) / 2, names)
        ax.set_title(title)
        ax.legend(fontsize=8)
    return _save(fig, path)


def figure_energy(report: dict, path: Path) -> bool:
    plt = _plt()
    profiles = list(report["energy_profiles"])
    fig, axes = plt.subplots(1, len(profiles), figsize=(5 * len(profiles), 3.8), squeeze=False)
    for ax, profile in zip(axes[0], profiles):
        names = list(report["models"])
        bottom = np.zeros(len(names))
        kinds = list(report["models"][names[0]]["per_sample"]["energy_breakdown_j"][profile])
        for kind in kinds:
            values = np.array([report["models"][n]["per_sample"]["energy_breakdown_j"][profile][kind] * 1e9
                               for n in names])
            ax.bar(names, values, bottom=bottom, label=kind)
            bottom += values
        ax.set_title(f"{profile} (nJ / sample)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def figure_sparsity(report: dict, path: Path) -> bool:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    drawn = False
    for name, model in report["models"].items():
        per_epoch = model.get("training", {}).get("layer_sparsity")
        if not per_epoch:
            continue
        per_layer = np.array(per_epoch)  # [epochs, layers]
        layer_names = [layer["name"] for layer in model["layers"]][: per_layer.shape[1]]
        for k in range(per_layer.shape[1]):
            ax.plot(np.arange(1, len(per_layer) + 1), per_layer[:, k], marker=".",
                    label=f"{name}: {layer_names[k] if k < len(layer_names) else k}")
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("epoch")
    ax.set_ylabel("pruned share of synapses")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    return _save(fig, path)


def figure_accuracy_energy(report: dict, path: Path) -> bool:
    plt = _plt()
    profile = report["energy_profile"]
    measured = {name: m for name, m in report["models"].items() if m.get("accuracy")}  # none without labels
    if not measured:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for index, (name, model) in enumerate(report["models"].items()):
        color = f"C{index}"
        if name not in measured:
            continue
        accuracy = model["accuracy"].get("norse", model["accuracy"]["lava"])
        ax.scatter(model["per_sample"]["energy_j"][profile] * 1e9, 100 * accuracy, color=color, s=50, label=name)
        if model.get("fixed", {}).get("accuracy") is not None:
            ax.scatter(model["fixed"]["per_sample"]["energy_j"][profile] * 1e9, 100 * model["fixed"]["accuracy"],
                       facecolors="none", edgecolors=color, s=80)
    ax.set_xlabel(f"energy per sample, {profile} (nJ)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def figure_training_time(report: dict, path: Path) -> bool:
    timed = {name: m["training"] for name, m in report["models"].items() if m.get("training", {}).get("epoch_time_s")}
    if not timed:
        return False
    plt = _plt()
    fig, (time_ax, macs_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, training in timed.items():
        epochs = np.arange(1, len(training["epoch_time_s"]) + 1)
        time_ax.plot(epochs, training["epoch_time_s"], marker=".",
                     label=f"{name}: {training['wall_time_s']:.1f} s in all")
        if training.get("epoch_forward_macs"):
            macs_ax.plot(epochs, np.array(training["epoch_forward_macs"]) / 1e9, marker=".", label=name)
    time_ax.set(xlabel="epoch", ylabel="wall time (s)", ylim=(0, None))
    macs_ax.set(xlabel="epoch", ylabel="forward multiply-accumulates (10^9)", ylim=(0, None))
    for ax in (time_ax, macs_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def write_figures(report: dict, out_dir: Path) -> list[str]:
    """Draw every figure the report's data allows; returns their names."""
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    makers = {
        "rasters": lambda p: figure_rasters(report, out_dir, p),
        "layers": lambda p: figure_layers(report, p),
        "energy": lambda p: figure_energy(report, p),
        "sparsity": lambda p: figure_sparsity(report, p),
        "accuracy_energy": lambda p: figure_accuracy_energy(report, p),
        "training_time": lambda p: figure_training_time(report, p),
    }
    return [name for name, make in makers.items() if make(figures / f"{name}.png")]


def _num(value, fmt: str = ".4f") -> str:
    return "–" if value is None else format(value, fmt)


class Heading(NamedTuple):
    level: int  # 1 or 2
    text: str


class Paragraph(NamedTuple):
    text: str


class Table(NamedTuple):
    header: list[str]
    rows: list[list[str]]


def report_blocks(report: dict) -> list:
    """The report as a list of headings, paragraphs and tables; rendered to Markdown and to HTML alike."""
    ds = report["dataset"]
    train_part = f"{ds['n_train']} training and " if ds.get("n_train") else ""
    profile = report["energy_profile"]
    n_lava = ds.get("n_lava", ds["n_test"])
    coverage = ("Lava numbers come from simulating every test sample" if n_lava == ds["n_test"] else
                f"Norse accuracy covers all {ds['n_test']} test samples; the Lava numbers (accuracy, agreement, "
                f"spikes, operations, energy) cover a seeded subset of {n_lava} (`--lava-samples`)")
    blocks: list = [
        Heading(1, "dpap-neuro run report"),
        Paragraph(f"Dataset `{ds['name']}`: {train_part}{ds['n_test']} test samples, {ds['timesteps']} steps "
                  f"each. {coverage}; energy uses the `{profile}` profile."),
    ]
    rows = []
    for name, m in report["models"].items():
        agreement, fixed = m.get("agreement", {}), m.get("fixed", {})
        accuracy = m.get("accuracy", {})  # absent without labels (the own-model API)
        rows.append([name, str(m.get("pruner")), _num(accuracy.get("norse")), _num(accuracy.get("lava")),
                     _num(agreement.get("spikes")), _num(agreement.get("predictions")),
                     _num(fixed.get("accuracy")), _num(fixed.get("agreement", {}).get("predictions")),
                     str(m["synapses"]), str(m["neurons"]), f"{m['per_sample']['spikes']:.1f}",
                     f"{m['per_sample']['synops']:.0f}", f"{m['per_sample']['energy_j'][profile] * 1e9:.1f} nJ"])
    blocks.append(Table(["model", "pruner", "Norse acc.", "Lava acc.", "spike agreement", "prediction agreement",
                         "Loihi fixed-pt acc.", "fixed-pt prediction agreement", "synapses", "neurons",
                         "spikes/sample", "synops/sample", "energy/sample"], rows))
    profiles = report["energy_profiles"]
    blocks += [
        Heading(2, "Energy per sample by profile"),
        Table(["model", *profiles], [[name, *(f"{m['per_sample']['energy_j'][p] * 1e9:.1f} nJ" for p in profiles)]
                                     for name, m in report["models"].items()]),
        Paragraph("Sources: " + "; ".join(f"`{n}`: {p['source']}" for n, p in profiles.items())),
    ]
    cmp_ = report["comparison"]
    kinds = ("synapses", "neurons", "spikes", "synops", "energy")
    blocks += [Heading(2, f"{cmp_['pruned']} / {cmp_['baseline']} (per sample)"),
               Table(list(kinds), [[_num(cmp_['ratios'][k], ".3f") for k in kinds]])]
    blocks += training_blocks(report)
    for name, m in report["models"].items():
        blocks += [Heading(2, f"Layers of `{name}`"),
                   Table(["layer", "neurons (of)", "synapses (of)", "spikes/sample", "synops/sample"],
                         [[layer["name"], f"{layer['neurons']} ({layer['original_neurons']})",
                           f"{layer['synapses']} ({layer['original_synapses']})", f"{layer['spikes']:.1f}",
                           f"{layer['synops']:.0f}"] for layer in m["layers"]])]
    return blocks


def training_times(report: dict) -> dict[str, float]:
    """Training wall time of each model that has a training record, seconds."""
    return {name: m["training"]["wall_time_s"] for name, m in report["models"].items()
            if m.get("training", {}).get("wall_time_s")}


def training_blocks(report: dict) -> list:
    """Training time per model (total, first and last epoch) and against the comparison's baseline."""
    times, baseline = training_times(report), report["comparison"]["baseline"]
    if not times:
        return []
    rows = []
    for name, total in times.items():
        training = report["models"][name]["training"]
        epochs = training.get("epoch_time_s") or [None]
        ratio = total / times[baseline] if baseline in times else None
        rows.append([name, f"{total:.1f} s", _num(epochs[0], ".2f"), _num(epochs[-1], ".2f"), _num(ratio, ".3f")])
    return [Heading(2, "Training time"),
            Table(["model", "training time", "first epoch (s)", "last epoch (s)", f"time / {baseline}"], rows)]


def render_markdown(blocks: list, figures: list[str]) -> str:
    lines = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        else:
            cell = lambda text: text.replace("|", "\\|")  # a "|" inside a cell must not end it
            lines += ["| " + " | ".join(map(cell, block.header)) + " |", "|" + "---|" * len(block.header)]
            lines += ["| " + " | ".join(map(cell, row)) + " |" for row in block.rows]
            lines.append("")
    if figures:
        lines += ["## Figures", ""] + [f"![{FIGURES[n]}](figures/{n}.png)" for n in figures]
    return "\n".join(lines).rstrip() + "\n"


def render_html(blocks: list, out_dir: Path, figures: list[str]) -> str:
    """One self-contained page: the report's tables and every figure as a data URI.

    A small script counts the figures the browser actually decoded and writes
    the count into ``#figures-loaded`` (tests read it from the rendered DOM).
    """
    esc = html.escape
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{esc(block.text)}</p>")
        else:
            header = "".join(f"<th>{esc(cell)}</th>" for cell in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in block.rows)
            body.append(f"<table><tr>{header}</tr>{rows}</table>")
    body.append("<h2>Figures</h2>")
    for name in figures:
        data = base64.b64encode((out_dir / "figures" / f"{name}.png").read_bytes()).decode("ascii")
        body.append(f'<figure><img class="figure" alt="{name}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{esc(FIGURES[name])}</figcaption></figure>")
    script = ("<script>window.addEventListener('load',function(){var imgs=document.querySelectorAll('img.figure');"
              "var ok=0;imgs.forEach(function(i){if(i.complete&&i.naturalWidth>0){ok++;}});"
              "document.getElementById('figures-loaded').textContent=ok+'/'+imgs.length;});</script>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px}img{max-width:100%}figcaption{color:#555;font-size:13px}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>dpap-neuro report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}"
            f"<p>Figures rendered: <span id='figures-loaded'>0/{len(figures)}</span></p>{script}</body></html>")


def write_reports(report: dict, out_dir: Path, progress: bool = False, extra_figures: tuple[str, ...] = ()) -> None:
    """report.md, figures/*.png and report.html in ``out_dir`` (each written atomically).

    ``extra_figures``: names (``FIGURES`` keys) of figures another command drew into ``out_dir/figures``
    (``dpap tune``'s frontier), shown after the run's own."""
    out_dir = Path(out_dir)
    figures = write_figures(report, out_dir) + list(extra_figures)
    blocks = report_blocks(report)
    atomic_write_text(out_dir / "report.md", render_markdown(blocks, figures))
    atomic_write_text(out_dir / "report.html", render_html(blocks, out_dir, figures))
