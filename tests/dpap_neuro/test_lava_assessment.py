"""run.lava_assessment: chunks in parallel subprocesses, or shared by torchrun ranks, give the very report of one
process simulating everything at once; the fast engine is cross-checked against the per-layer one."""

import json
import os

import torch
import torch.multiprocessing as mp

from conftest import free_port, needs_lava, tiny_data

pytestmark = needs_lava


def tiny_setup(tmp_path, **config_fields):
    """A small trained-looking MLP as a SparseNet file, 30 test samples, and a RunConfig."""
    from dpap_neuro.config import RunConfig
    from dpap_neuro.models import SpikingMLP
    from hw_export.h5io import write_sparsenet
    from hw_export.norse import export_model

    torch.manual_seed(0)
    model = SpikingMLP(10, [16], 3, weight_init_gain=6.0)
    net = export_model(model, (10,), {"model": "tiny"})
    path = tmp_path / "tiny.h5"
    if not path.exists():
        write_sparsenet(net, path)
    config = RunConfig(**{"dataset": "digits", "timesteps": 8, "lava_check_samples": 0, **config_fields})
    return config, net, path, model, tiny_data(n=30, steps=8, seed=3)


def assessed(tmp_path, **config_fields):
    from dpap_neuro.run import lava_assessment
    from hw_export.energy import PROFILES

    config, net, path, model, data = tiny_setup(tmp_path, **config_fields)
    return lava_assessment(config, net, path, model, data, PROFILES, progress=False)


def test_chunks_in_parallel_workers_give_the_report_of_one_run(tmp_path):
    whole = assessed(tmp_path, lava_chunk_size=30, lava_workers=1)
    parallel = assessed(tmp_path, lava_chunk_size=7, lava_workers=3)  # 5 chunks, the last of 2 samples
    assert whole == parallel
    assert whole["agreement"]["spikes"] == 1.0 and whole["per_sample"]["spikes"] > 0


def test_the_fast_engine_is_checked_against_the_per_layer_one_on_a_seeded_subset(tmp_path):
    entry = assessed(tmp_path, lava_check_samples=5, lava_workers=2)
    assert entry["engine_check"]["samples"] == 5
    assert entry["engine_check"]["spikes_identical"] and entry["engine_check"]["readout_equal_fixed"]
    assert entry["engine_check"]["readout_max_rel_diff_float"] <= 1e-9
    assert "engine_check" not in assessed(tmp_path, lava_check_samples=0)


def rank_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    from dpap_neuro.distributed import rank as current_rank

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        assert current_rank() == rank
        entry = assessed(__import__("pathlib").Path(out_dir), lava_chunk_size=7)
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
        json.dump(entry, fh)


def test_torchrun_ranks_share_the_chunks_and_rank_0_reports_them_all(tmp_path):
    world = 2
    single = assessed(tmp_path, lava_chunk_size=7)
    mp.spawn(rank_worker, args=(world, free_port(), str(tmp_path)), nprocs=world, join=True)
    entries = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    assert entries[1:] == [None] * (world - 1)
    assert entries[0] == json.loads(json.dumps(single))  # through JSON: tuples become lists
