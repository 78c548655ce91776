import numpy as np
import pytest
import torch

from dpap_neuro.data import load_dataset
from dpap_neuro.data.digits import rate_encode, saccade_events, saccade_path
from hw_export.errors import UserError


def test_digits_split_is_stratified_and_rate_coded():
    train, test = load_dataset("digits", timesteps=7, seed=3)
    assert len(train) + len(test) == 1797
    assert train.spikes.shape == (7, len(train), 64)
    assert set(torch.unique(train.spikes).tolist()) <= {0.0, 1.0}
    # Stratified: every class in the test split, in proportion (+-2 samples).
    counts = torch.bincount(test.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_same_seed_same_spikes_other_seed_other_spikes():
    a, _ = load_dataset("digits", timesteps=5, seed=1)
    b, _ = load_dataset("digits", timesteps=5, seed=1)
    c, _ = load_dataset("digits", timesteps=5, seed=2)
    assert torch.equal(a.spikes, b.spikes)
    assert not torch.equal(a.spikes[:, :100], c.spikes[:, :100])


def test_the_test_split_alone_is_the_same_test_split():
    no_train, alone = load_dataset("digits", timesteps=5, seed=1, train=False)
    _, with_train = load_dataset("digits", timesteps=5, seed=1)
    assert no_train is None and torch.equal(alone.spikes, with_train.spikes) and torch.equal(alone.labels, with_train.labels)


def test_rate_code_is_one_seeded_bernoulli_draw_however_long():
    """Long codes are drawn in blocks of steps: still P(spike) = intensity from one seeded stream, the spikes
    every earlier result was computed on."""
    images = np.random.default_rng(5).random((50, 8, 8)).astype(np.float32)
    spikes = rate_encode(images, timesteps=2000, seed=4)  # several blocks
    expected = np.random.default_rng(4).random((2000, 50, 64)) < images.reshape(50, 64)[None]
    assert spikes.dtype == torch.float32 and np.array_equal(spikes.numpy(), expected)


def test_rate_code_follows_intensity():
    images = np.stack([np.full((8, 8), 0.0), np.full((8, 8), 1.0), np.full((8, 8), 0.25)])
    spikes = rate_encode(images.astype(np.float32), timesteps=400, seed=0)
    rates = spikes.mean(dim=(0, 2))
    assert rates[0] == 0 and rates[1] == 1
    assert abs(float(rates[2]) - 0.25) < 0.02


def test_saccades_form_a_closed_triangle():
    path = saccade_path(30, amplitude_px=1.5)
    assert path.shape == (31, 2)
    np.testing.assert_allclose(path[0], 0)
    np.testing.assert_allclose(path[-1], 0)
    assert np.abs(path).max() == pytest.approx(1.5)


def test_moving_edge_gives_on_ahead_and_off_behind():
    # A bright vertical bar moved right by the first saccade leg (dx > 0):
    # pixels it moves onto brighten (ON), pixels it leaves darken (OFF).
    image = np.zeros((1, 8, 8), dtype=np.float32)
    image[0, :, 3] = 1.0
    events = saccade_events(image, timesteps=30, amplitude_px=1.5)
    assert events.shape == (30, 1, 2, 8, 8)
    first_leg = events[:10, 0]
    on_cols = first_leg[:, 0].sum(dim=(0, 1))
    off_cols = first_leg[:, 1].sum(dim=(0, 1))
    assert on_cols[4] > 0 and on_cols[2] == 0
    assert off_cols[3] > 0
    # A blank image makes no events at all.
    assert saccade_events(np.zeros((1, 8, 8), np.float32), 30).sum() == 0


def test_sequential_digits_show_one_column_at_a_time_left_to_right():
    from dpap_neuro.data.digits import column_sequence

    image = np.zeros((1, 8, 8), dtype=np.float32)
    image[0, :, 2] = 1.0  # column 2 full, the rest dark
    image[0, 5, 6] = 1.0  # and one pixel of column 6
    spikes = column_sequence(image, timesteps=16, seed=0)  # two steps per column
    assert spikes.shape == (16, 1, 8)
    assert spikes[4:6, 0].eq(1).all() and spikes[12:14, 0, 5].eq(1).all()  # certain spikes at their steps
    assert spikes.sum() == 2 * 8 + 2  # and none elsewhere
    train, test = load_dataset("digits-seq", timesteps=24, seed=0)
    assert train.input_shape == (8,) and test.spikes.shape[0] == 24
    with pytest.raises(UserError, match="multiple of 8"):
        load_dataset("digits-seq", timesteps=30, seed=0)
    from dpap_neuro.config import RunConfig

    defaults = RunConfig(dataset="digits-seq")
    assert (defaults.model, defaults.timesteps) == ("rmlp", 64)  # a recurrent model by default


def test_bad_dataset_name_is_a_clear_error():
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("mnist", timesteps=5, seed=0)


def test_validation_split_is_disjoint_stratified_and_seeded():
    from dpap_neuro.data import split_validation

    train, _ = load_dataset("digits", timesteps=3, seed=0)
    kept, val = split_validation(train, 0.1, seed=0)
    assert len(kept) + len(val) == len(train) and len(val) == 144
    # Disjoint and complete: every training sample lands in exactly one part (compare whole spike trains).
    rows = {tuple(train.spikes[:, n].flatten().tolist()) + (int(train.labels[n]),) for n in range(len(train))}
    parts = [tuple(d.spikes[:, n].flatten().tolist()) + (int(d.labels[n]),) for d in (kept, val) for n in range(len(d))]
    assert len(parts) == len(set(parts)) == len(rows) and set(parts) == rows
    counts = torch.bincount(val.labels, minlength=10)
    assert counts.min() >= 13 and counts.max() <= 16  # stratified: ~14.4 per class
    again, val_again = split_validation(train, 0.1, seed=0)
    assert torch.equal(val.labels, val_again.labels) and torch.equal(val.spikes, val_again.spikes)
    _, other = split_validation(train, 0.1, seed=1)
    assert not torch.equal(val.spikes, other.spikes)


def test_no_validation_split_and_bad_fractions():
    from dpap_neuro.data import split_validation

    train, _ = load_dataset("digits", timesteps=2, seed=0)
    same, none = split_validation(train, 0.0, seed=0)
    assert same is train and none is None
    for bad in (-0.1, 1.0):
        with pytest.raises(UserError, match="val_fraction must be in"):
            split_validation(train, bad, seed=0)
