import pytest
import torch

from conftest import a_bug_in, assert_bug_keeps_its_traceback
from dpap_neuro.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dpap_neuro.config import RunConfig
from dpap_neuro.models import build_model
from dpap_neuro.pruning import GMPPruner


@pytest.mark.parametrize("dataset, input_shape, masks", [
    ("digits-events", (2, 4), ("weight_mask",)),
    ("digits-seq", (8,), ("input_weights_mask", "recurrent_weights_mask")),  # rmlp: a recurrent cell's two masks
])
def test_round_trip_keeps_masks_and_outputs(tmp_path, dataset, input_shape, masks):
    config = RunConfig(dataset=dataset, hidden_sizes=(6,), timesteps=16)
    torch.manual_seed(0)
    model = build_model(input_shape, config.hidden_sizes, 3, **config.model_kwargs())
    pruner = GMPPruner(target_sparsity=0.5, start_fraction=0.0, end_fraction=0.1, update_every_steps=1)
    pruner.attach(model, total_steps=4)
    pruner.update(4)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, config, "gmp", "gmp", input_shape, 3)
    loaded, meta = load_checkpoint(path)
    assert meta["pruner"] == "gmp" and RunConfig.from_dict(meta["config"]) == config
    for name in masks:
        assert torch.equal(getattr(loaded[1], name), getattr(model[1], name))
    spikes = (torch.rand(16, 2, *input_shape) < 0.5).float()
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


# --- property-based: any bytes, any payload, one CheckpointError line or a working model -------------

import os  # noqa: E402
import tempfile  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=int(os.environ.get("DPAP_FUZZ_EXAMPLES", 40)), deadline=None,
                derandomize="DPAP_FUZZ_EXAMPLES" not in os.environ, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def valid_payload() -> dict:
    import torch

    from dpap_neuro.checkpoint import save_checkpoint
    from dpap_neuro.config import RunConfig
    from dpap_neuro.models import build_model
    from dpap_neuro.pruning import GMPPruner

    config = RunConfig(hidden_sizes=(6,), timesteps=4, dataset="digits")
    torch.manual_seed(0)
    model = build_model((64,), config.hidden_sizes, 10, **config.model_kwargs())
    GMPPruner(target_sparsity=0.5).attach(model, total_steps=2)
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(f"{tmp}/m.pt", model, config, "gmp", "gmp", (64,), 10)
        return torch.load(f"{tmp}/m.pt", weights_only=True)


def load_outcome(write) -> str:
    from dpap_neuro.checkpoint import CheckpointError, load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/c.pt"
        write(path)
        try:
            model, _ = load_checkpoint(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(path), str(exc)
            return "error"
    import torch

    model(torch.zeros(2, 1, 64))  # a model that loads also runs
    return "valid"


PLAIN = st.recursive(st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats() | st.text(max_size=6),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                     max_leaves=6)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_refused(data):
    def write(path):
        with open(path, "wb") as fh:
            fh.write(data)

    assert load_outcome(write) == "error"


@FUZZ
@given(data=st.data())
def test_mutated_payloads_load_or_are_refused(data):
    import torch

    payload = valid_payload()
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(["top", "config", "state_dict"]))
        target = payload if where == "top" else payload[where] if isinstance(payload.get(where), dict) else payload
        key = data.draw(st.sampled_from(sorted(target) + ["extra"]))
        action = data.draw(st.sampled_from(["delete", "plain", "tensor"]))
        if action == "delete":
            target.pop(key, None)
        elif action == "plain":
            target[key] = data.draw(PLAIN)
        else:
            shape = data.draw(st.lists(st.integers(0, 4), max_size=3))
            target[key] = torch.full(shape, data.draw(st.floats(allow_nan=True, width=32)))
    load_outcome(lambda path: torch.save(payload, path))


@pytest.mark.parametrize("bug", [RuntimeError, AttributeError, TypeError])
def test_a_bug_while_rebuilding_the_model_keeps_its_traceback(tmp_path, monkeypatch, bug):
    import dpap_neuro.checkpoint as checkpoint

    path = tmp_path / "m.pt"
    torch.save(valid_payload(), path)
    monkeypatch.setattr(checkpoint, "build_model", a_bug_in("build_model", bug))
    assert_bug_keeps_its_traceback(lambda: load_checkpoint(path), "build_model", bug, CheckpointError)


def test_a_state_that_does_not_fit_the_model_is_still_one_line(tmp_path):
    payload = valid_payload()
    name = next(key for key in payload["state_dict"] if key.endswith("weight_orig"))
    payload["state_dict"][name] = torch.zeros(3, 3)
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="inconsistent checkpoint"):
        load_checkpoint(tmp_path / "m.pt")
