"""dpap tune: the bisection finds a budget's boundary, every pruner gets the same trials, an interrupted tune
resumes without training a finished trial again, and bad budgets or pruners are one line."""

import json
import subprocess
import sys

import pytest

from dpap_neuro import tune as tune_module
from dpap_neuro.tune import CANDIDATES, STRENGTHS, Budget, bisection_steps, tune
from hw_export.errors import UserError

DPAP = [sys.executable, "-m", "dpap_neuro"]


def fake_trial(calls: list):
    """A stand-in for training: accuracy falls and energy falls with each step up a pruner's grid; gmp's global
    allocation is 0.4 points more accurate than its default."""
    def run(spec):
        calls.append((spec["pruner"], spec["strength"], spec["config"]["seed"], json.dumps(spec["options"])))
        if spec["pruner"] == "none":
            accuracy, energy = 0.95, 1.0
        else:
            index = STRENGTHS[spec["pruner"]][1].index(spec["strength"])
            accuracy = 0.95 - (0.01 if spec["pruner"] == "gmp" else 0.02) * (index + 1)
            energy = 0.9 - 0.1 * index
            accuracy += 0.004 if spec["options"].get("allocation") == "global" else 0.0
        return {"pruner": spec["pruner"], "strength": spec["strength"], "seed": spec["config"]["seed"],
                "options": spec["options"], "validation_accuracy": accuracy, "energy_j": {"loihi": energy},
                "synapses": 1, "neurons": 1, "synapses_kept": 1.0, "neurons_kept": 1.0, "training_time_s": 0.1}
    return run


def test_bisection_finds_the_strongest_setting_within_the_accuracy_budget(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(tune_module, "run_trial", fake_trial(calls))
    result = tune({"dataset": "digits"}, ["gmp", "dpap"], Budget(max_drop_points=3.5), [0, 1], tmp_path, workers=0,
                  progress=False)
    # gmp loses 1 point a step: index 2 (0.8) is the last within 3.5 points; dpap 2 a step: index 0 (c = 0.5).
    assert {(p["pruner"], p["strength"]) for p in result["points"] if Budget(3.5).meets(p, 0.95)} == {
        ("gmp", 0.7), ("gmp", 0.8), ("dpap", 0.5)}
    assert result["pick"]["pruner"] == "gmp" and result["pick"]["strength"] == 0.8  # the cheaper of the two
    assert result["pick"]["options"]["allocation"] == "global"  # the candidate better on validation
    assert result["per_pruner"]["gmp"]["strength"] == 0.8 and result["per_pruner"]["gmp"]["meets"]
    assert result["per_pruner"]["dpap"]["strength"] == 0.5 and result["per_pruner"]["dpap"]["meets"]
    per_pruner = {p: sum(1 for c in calls if c[0] == p) for p in ("gmp", "dpap")}
    trials_each = 2 * len(CANDIDATES["gmp"]) * bisection_steps(7)  # 2 seeds x candidates x steps
    assert per_pruner == {"gmp": trials_each, "dpap": trials_each} and len(CANDIDATES["dpap"]) == len(CANDIDATES["gmp"])
    saved = json.loads((tmp_path / "tune.json").read_text())
    assert saved["pick"] == result["pick"] and len(saved["trials"]) == 2 * trials_each


def test_an_energy_budget_picks_the_most_accurate_within_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tune_module, "run_trial", fake_trial([]))
    result = tune({"dataset": "digits"}, ["gmp"], Budget(max_energy_ratio=0.55), [0], tmp_path, workers=0,
                  progress=False)
    assert result["pick"]["strength"] == STRENGTHS["gmp"][1][4]  # energy 0.9 - 0.4 = 0.5: the weakest within 0.55


def test_a_trial_pruned_past_every_path_is_recorded_and_never_picked(tmp_path, monkeypatch):
    """A strength that cuts the network (seen on the N-MNIST stand-in: conv1 emptied) ends that trial, not the
    tune: the bisection treats it as too strong, and the pick is the strongest setting that leaves a network."""
    honest = fake_trial([])

    def cutting(spec):
        result = honest(spec)
        if spec["pruner"] == "gmp" and spec["strength"] >= STRENGTHS["gmp"][1][5]:  # as accurate, nothing left
            result.update(network_cut=True, validation_accuracy=0.95, energy_j={"loihi": 0.0})
        return result

    monkeypatch.setattr(tune_module, "run_trial", cutting)
    result = tune({"dataset": "digits"}, ["gmp"], Budget(max_drop_points=30.0), [0], tmp_path, workers=0,
                  progress=False)
    assert result["pick"]["strength"] == STRENGTHS["gmp"][1][4] and not result["pick"]["network_cut"]
    assert any(p["network_cut"] for p in result["points"])  # tried, kept in tune.json, not taken
    # ... and not drawn at zero energy in tune.png, as if it were the cheapest network
    drawn = tune_module.frontier_points(result)["gmp"]
    assert drawn and not any(p["network_cut"] for p in drawn)


def test_a_network_cut_trial_is_measured_without_an_export(tmp_path):
    """``measured_trial`` on a model whose masks reach no readout: a record saying so (no synapse, neuron or
    energy), its PyTorch accuracy on validation, no exception."""
    import torch

    from dpap_neuro.config import RunConfig
    from dpap_neuro.experiment import load_splits
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import make_pruner
    from dpap_neuro.train import evaluate
    from dpap_neuro.tune import measured_trial, trial_spec

    config = RunConfig(dataset="digits", timesteps=8, val_fraction=0.2)
    splits = load_splits(config)
    torch.manual_seed(0)
    model = build_model(splits.train.input_shape, (16,), 10, "mlp")
    pruner = make_pruner("magnitude", sparsity=0.5)
    pruner.attach(model, total_steps=1, steps_per_epoch=1)
    for layer in model.modules():
        if hasattr(layer, "weight_mask") and layer.weight_mask.shape[0] == 16:  # the hidden layer's every synapse
            layer.weight_mask.zero_()
    spec = trial_spec(config.to_dict(), 1, "magnitude", 0.5, 0)
    record = measured_trial(spec, model, pruner, splits)
    assert record["network_cut"] and record["synapses"] == 0 and record["neurons_kept"] == 0.0
    assert set(record["energy_j"].values()) == {0.0} and record["spikes_per_sample"] == 0.0
    assert record["validation_accuracy"] == evaluate(model, splits.validation, keep_spikes=False).accuracy


def test_an_interrupted_tune_resumes_without_training_a_finished_trial_again(tmp_path, monkeypatch):
    calls = []
    fake = fake_trial(calls)

    def interrupted(spec):
        if len(calls) == 4:
            raise KeyboardInterrupt
        return fake(spec)

    monkeypatch.setattr(tune_module, "run_trial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune({"dataset": "digits"}, ["gmp"], Budget(1.0), [0, 1], tmp_path, workers=0, progress=False)
    assert not (tmp_path / "tune.json").exists()  # only finished trials are written
    finished = set(calls)
    calls.clear()
    monkeypatch.setattr(tune_module, "run_trial", fake)
    result = tune({"dataset": "digits"}, ["gmp"], Budget(1.0), [0, 1], tmp_path, workers=0, progress=False)
    assert not finished & set(calls), "a finished trial was trained again"
    assert len(result["trials"]) == 2 * len(CANDIDATES["gmp"]) * bisection_steps(7)


def rank_worker(rank, world, port, out_dir, shared):
    """One torchrun-like rank: the same tune as every other rank, its calls and pick written to rank<r>.json;
    its cache in ``out_dir``/tune, or (``shared`` false) a folder of its own, ``out_dir``/tune<r>."""
    import os
    from pathlib import Path

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    calls = []
    tune_module.run_trial = fake_trial(calls)
    try:
        result = tune({"dataset": "digits"}, ["gmp", "dpap"], Budget(max_drop_points=3.5), [0, 1],
                      Path(out_dir) / ("tune" if shared else f"tune{rank}"), workers=0, progress=False)
    finally:
        dist.destroy_process_group()
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps({"calls": calls, "pick": result["pick"],
                                                               "trials": result["trials"]}))


@pytest.mark.parametrize("shared", [True, False], ids=["one-cache-folder", "a-cache-folder-per-rank"])
def test_torchrun_ranks_share_the_trials_and_each_reaches_the_one_process_pick(tmp_path, monkeypatch, shared):
    """Also where the ranks' caches differ (folders of their own, one of them already holding a trial): a rank
    that sees a trial cached must not leave the others' split short of it (CI once hit this with one folder,
    a rank reading a trial the other had just written)."""
    import shutil

    import torch.multiprocessing as mp

    from conftest import free_port

    alone = []
    monkeypatch.setattr(tune_module, "run_trial", fake_trial(alone))
    single = tune({"dataset": "digits"}, ["gmp", "dpap"], Budget(max_drop_points=3.5), [0, 1], tmp_path / "alone",
                  workers=0, progress=False)
    expected = sorted(alone)
    if not shared:  # rank 1 already holds the dense trial of seed 1, the second dense trial: its own share
        dense_seed1 = next(path for path in (tmp_path / "alone" / "trials").iterdir()
                           if json.loads(path.read_text())["pruner"] == "none"
                           and json.loads(path.read_text())["seed"] == 1)
        (tmp_path / "tune1" / "trials").mkdir(parents=True)
        shutil.copy(dense_seed1, tmp_path / "tune1" / "trials")
        expected.remove(next(call for call in alone if call[0] == "none" and call[2] == 1))
    world = 2
    mp.spawn(rank_worker, args=(world, free_port(), str(tmp_path), shared), nprocs=world, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    calls = [[tuple(c) for c in r["calls"]] for r in ranks]
    assert all(calls) and not set(calls[0]) & set(calls[1])  # each trial trained by one rank only
    assert sorted(calls[0] + calls[1]) == expected  # together: the very trials of one process, none cached
    for r in ranks:
        assert r["pick"] == single["pick"]
        assert [t["strength"] for t in r["trials"]] == [t["strength"] for t in single["trials"]]
    folders = [tmp_path / "tune"] if shared else [tmp_path / "tune0", tmp_path / "tune1"]
    for folder in folders:  # every rank's cache ends complete
        assert len(list((folder / "trials").iterdir())) == len(alone)
    saved = json.loads((folders[0] / "tune.json").read_text())  # written once, by rank 0
    assert saved["pick"] == single["pick"]
    assert shared or not (tmp_path / "tune1" / "tune.json").exists()


def test_a_budget_no_trial_meets_names_the_closest(tmp_path, monkeypatch):
    monkeypatch.setattr(tune_module, "run_trial", fake_trial([]))
    result = tune({"dataset": "digits"}, ["dpap"], Budget(max_drop_points=0.5), [0], tmp_path, workers=0,
                  progress=False)
    assert result["pick"] is None and result["closest"]["strength"] == STRENGTHS["dpap"][1][0]
    assert not result["per_pruner"]["dpap"]["meets"] and result["per_pruner"]["dpap"] == {**result["closest"],
                                                                                        "meets": False}
    message = tune_module.no_pick_message(result, Budget(max_drop_points=0.5))
    assert message.startswith("no trial meets --max-drop 0.5 on validation; the closest is dpap at c = 0.5")


@pytest.mark.parametrize("budget", [dict(max_drop_points=-1.0), dict(max_energy_ratio=0.0),
                                    dict(max_energy_ratio=1.5), dict(), dict(max_drop_points=1, max_energy_ratio=0.2)])
def test_bad_budgets_are_refused(budget):
    with pytest.raises(UserError):
        Budget(**budget)


@pytest.mark.parametrize("args, message", [
    (["--max-drop", "-1"], "--max-drop is in accuracy points"),
    (["--max-energy", "2"], "--max-energy is a share of the dense model's energy"),
    (["--max-drop", "1", "--pruners", "dpap,lottery"], "unknown pruner lottery for tune"),
    (["--max-drop", "1", "--max-energy", "0.2"], "not allowed with argument"),
    (["--max-drop", "1", "--model", "ann-mlp"], "is an ANN (ReLU)"),
    (["--max-drop", "1", "--dense-from", "nowhere/dense.pt"], "nowhere/dense.pt: no such file"),
])
def test_the_command_refuses_bad_budgets_and_pruners_in_one_line(tmp_path, args, message):
    out = tmp_path / "tune"
    done = subprocess.run([*DPAP, "tune", "--dataset", "digits", "--out", str(out), *args],
                          capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in done.stderr
    assert not out.exists()


def test_a_streamed_split_is_measured_as_the_same_samples_in_memory(tmp_path):
    """Trials on the tonic datasets read their validation split from disk, a chunk at a time."""
    import torch

    from dpap_neuro.config import RunConfig
    from dpap_neuro.data.batches import batches, sequential_batches
    from dpap_neuro.data.digits import SpikeDataset
    from dpap_neuro.data.nmnist_standin import StandinSettings, write_nmnist_standin
    from dpap_neuro.experiment import load_splits
    from dpap_neuro.models import build_model
    from dpap_neuro.tune import measured_on
    from hw_export.energy import PROFILES
    from hw_export.norse import export_model

    write_nmnist_standin(tmp_path / "data", StandinSettings(train_per_class=2, test_per_class=2))
    config = RunConfig(dataset="nmnist", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"),
                       timesteps=8)
    streamed = load_splits(config).test
    torch.manual_seed(0)
    model = build_model(streamed.input_shape, (16,), 10, "conv", conv_channels=(4,), weight_init_gain=20.0)
    net = export_model(model, streamed.input_shape)
    spikes, labels = next(batches(streamed, [torch.arange(len(streamed))]))
    in_memory = SpikeDataset(spikes, labels)
    accuracy, metrics = measured_on(model, net, streamed, PROFILES, chunk_size=7)  # 20 samples: chunks 7, 7, 6
    same_accuracy, same_metrics = measured_on(model, net, in_memory, PROFILES)
    assert accuracy == same_accuracy and metrics["per_sample"] == same_metrics["per_sample"]
    assert metrics["per_sample"]["spikes"] > 0


@pytest.mark.slow
def test_the_command_tunes_then_runs_the_pick_through_the_pipeline(tmp_path):
    out = tmp_path / "tune"
    done = subprocess.run([*DPAP, "tune", "--dataset", "digits", "--epochs", "2", "--hidden", "32", "--max-drop", "30",
                           "--pruners", "gmp", "--seeds", "1", "--workers", "0", "--out", str(out), "--quiet",
                           "--portable-kernels"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "tune.json").read_text())
    # --portable-kernels pins the trials' kernels and the pick's, as `dpap run --portable-kernels`
    assert {trial["cpu_capability"] for trial in result["trials"]} == {"DEFAULT"}
    per_seed = len(CANDIDATES["gmp"]) * bisection_steps(7)
    assert len(result["trials"]) == per_seed and result["pick"]["pruner"] == "gmp"
    assert len(list((out / "trials").glob("*.json"))) == 1 + per_seed  # the dense model is a trial too
    assert set(result["per_pruner"]) == {"gmp"}
    report = json.loads((out / "pick" / "report.json").read_text())
    assert report["environment"]["kernels"]["pinned"] == "yes"
    assert set(report["models"]) == {"dense", "gmp"}
    assert report["models"]["gmp"]["pruner_options"]["target_sparsity"] == result["pick"]["strength"]
    assert "data:image/png" in (out / "pick" / "report.html").read_text() and (out / "pick" / "figures" / "tune.png").is_file()


def test_a_dpap_runs_dense_model_is_reused_as_the_dense_trial_it_would_have_trained(tmp_path, monkeypatch):
    import dataclasses

    import torch

    from dpap_neuro.checkpoint import save_checkpoint
    from dpap_neuro.config import RunConfig
    from dpap_neuro.data import n_classes
    from dpap_neuro.experiment import fit, load_splits
    from dpap_neuro.tune import TrialCache, reuse_dense, run_trial, trial_key, trial_spec, trial_threads

    config = RunConfig(dataset="digits", epochs=1, hidden_sizes=(16,), timesteps=6, val_fraction=0.1, seed=0)
    base = {k: v for k, v in config.to_dict().items() if k not in ("seed", "pruner", "pruner_options")}
    threads = trial_threads(0)
    torch.set_num_threads(threads)
    splits = load_splits(config)
    model, history, _ = fit(config, "none", {}, splits.train, warn=False)  # as `dpap run` trains its dense model
    save_checkpoint(tmp_path / "run" / "dense.pt", model, config, "dense", "none", splits.train.input_shape,
                    n_classes(config.dataset), dataclasses.asdict(history))
    trained = run_trial(trial_spec(base, threads, "none", "-", 0))  # what the tune would train instead
    cache = TrialCache(tmp_path / "tune" / "trials")
    assert reuse_dense(tmp_path / "run", base, [0], threads, cache) == 0
    reused = cache.get(trial_key(trial_spec(base, threads, "none", "-", 0)))
    for key in ("validation_accuracy", "energy_j", "synapses", "neurons", "spikes_per_sample"):
        assert reused[key] == trained[key], key
    calls = []
    monkeypatch.setattr(tune_module, "run_trial", fake_trial(calls))
    result = tune(base, ["gmp"], Budget(max_drop_points=99), [0], tmp_path / "tune", workers=0, progress=False)
    assert calls and all(c[0] != "none" for c in calls)  # the dense model was not trained again
    assert result["dense"]["runs"][0]["reused_from"] == str(tmp_path / "run" / "dense.pt")
    with pytest.raises(UserError, match=r"epochs 1 \(tune: 2\)"):  # trained differently: not the tune's model
        reuse_dense(tmp_path / "run", {**base, "epochs": 2}, [0], threads, cache)
    with pytest.raises(UserError, match="seed 0, not one of"):
        reuse_dense(tmp_path / "run", base, [1, 2], threads, cache)


@pytest.mark.parametrize("signal_name, status, processes, delay_s", [
    ("SIGTERM", 143, 3, 2.0), ("SIGINT", 130, 3, 2.0),  # while the workers train
    ("SIGINT", 130, 2, 0.0), ("SIGTERM", 143, 2, 0.0),  # while they start
])
def test_interrupting_a_tune_stops_its_running_trials_at_once(tmp_path, signal_name, status, processes, delay_s):
    """SIGTERM to dpap, or Ctrl-C to its process group, while trials train in workers or while the workers start:
    within seconds, one line, no process left (leaving the worker pool would otherwise wait for the running
    trials), no tune.json."""
    import os
    import time
    import uuid

    from conftest import interrupt_and_wait, processes_with_env, wait_for_processes

    token, stderr_path, out = uuid.uuid4().hex, tmp_path / "stderr.txt", tmp_path / "tune"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([*DPAP, "tune", "--dataset", "digits", "--epochs", "40", "--seeds", "1", "--pruners",
                                 "gmp", "--max-drop", "1", "--workers", "2", "--quiet", "--out", str(out)],
                                env={**os.environ, "DPAP_TEST_TOKEN": token}, stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)
        wait_for_processes(token, processes, proc, 300, stderr_path)  # 3: dpap and its two trial workers
        time.sleep(delay_s)
        took_s = interrupt_and_wait(proc, sigint=signal_name == "SIGINT", timeout_s=120)
    assert took_s < 10.0
    assert proc.returncode == status
    lines = stderr_path.read_text().strip().splitlines()
    if delay_s:
        assert lines[-1] == "dpap: interrupted"
    else:  # a worker cut off while Python starts in it may print its own EOFError (known, cosmetic)
        assert "dpap: interrupted" in lines
    # multiprocessing's resource tracker ends when the pipe dpap held closes, a few ms after dpap: wait 3 s at most
    deadline = time.monotonic() + 3
    while processes_with_env(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_env(token) == [] and not (out / "tune.json").exists()
