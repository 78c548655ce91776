import pytest
import torch

from dpap_neuro.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dpap_neuro.config import RunConfig
from dpap_neuro.models import build_model
from dpap_neuro.pruning import GMPPruner


def test_round_trip_keeps_masks_and_outputs(tmp_path):
    config = RunConfig(hidden_sizes=(6,), timesteps=5)
    torch.manual_seed(0)
    model = build_model((2, 4), config.hidden_sizes, 3, **config.model_kwargs())
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=4)
    pruner.update(4)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, config, "gmp", "gmp", (2, 4), 3)
    loaded, meta = load_checkpoint(path)
    assert meta["pruner"] == "gmp" and RunConfig.from_dict(meta["config"]) == config
    assert torch.equal(loaded[0].weight_mask, model[0].weight_mask)
    spikes = (torch.rand(5, 2, 2, 4) < 0.5).float()
    model.eval()
    assert torch.equal(loaded(spikes).readout_v, model(spikes).readout_v)


def test_foreign_or_broken_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a dpap-neuro checkpoint"):
        load_checkpoint(other)
