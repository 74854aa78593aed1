"""The synthetic tasks against their definitions; baselines measured empirically."""

import math

import numpy as np
import pytest

from experiments.training.tasks import adding, copy_memory


def test_copy_layout_follows_arjovsky_2016(rng):
    T = 7
    x, y = copy_memory.copy_batch(rng, 50, T)
    assert x.shape == y.shape == (50, T + 20)
    assert ((x[:, :10] >= 1) & (x[:, :10] <= 8)).all()
    assert (
        (x[:, 10 : 10 + T - 1] == 0).all() and (x[:, 10 + T - 1] == 9).all() and (x[:, 10 + T :] == 0).all()
    )
    assert (y[:, : T + 10] == 0).all() and (y[:, -10:] == x[:, :10]).all()


def test_variable_delay_moves_the_delimiter_and_the_recall_with_it(rng):
    T = 30
    x, y = copy_memory.copy_batch(rng, 400, T, variable_delay=True)
    assert x.shape == (400, T + 20)
    delimiter = np.argmax(x == 9, axis=1)
    delays = delimiter - 10 + 1
    assert delays.min() >= 1 and delays.max() <= T and len(np.unique(delays)) > T // 2
    for row, d in zip(range(400), delimiter):
        assert (y[row, d + 1 : d + 11] == x[row, :10]).all()
        assert (np.delete(y[row], np.arange(d + 1, d + 11)) == 0).all()


@pytest.mark.parametrize("variable_delay, k", [(False, 10), (True, 10), (False, 3)])
def test_copy_baseline_is_what_a_symbol_blind_predictor_scores(rng, variable_delay, k):
    T = 20
    _, y = copy_memory.copy_batch(rng, 20000, T, variable_delay=variable_delay, n_copy=k)
    assert y.shape == (20000, T + 2 * k) and ((y != 0).sum(axis=1) == k).all()
    # Knows where the recall is, remembers no symbol: blank with certainty, else uniform over 8.
    recall = y != 0
    nats = np.where(recall, math.log(8), 0.0).mean()
    assert nats == pytest.approx(copy_memory.baseline(T, k), rel=1e-9)
    if k != 10:
        return
    if not variable_delay:  # position-only predictor (no memory at all), estimated from data
        p = np.stack([(y == k).mean(axis=0) for k in range(10)], axis=-1)  # (positions, classes)
        ce = -np.log(np.take_along_axis(np.broadcast_to(p, (*y.shape, 10)), y[..., None], -1)).mean()
        assert ce == pytest.approx(copy_memory.baseline(T), rel=0.01)


def test_recall_accuracy_counts_only_the_ten_recalled_symbols(rng):
    _, y = copy_memory.copy_batch(rng, 10, 5, variable_delay=True)
    assert copy_memory.recall_accuracy(y, y) == 1.0
    wrong = y.copy()
    wrong[y != 0] = (y[y != 0] % 8) + 1  # every symbol shifted: all wrong
    assert copy_memory.recall_accuracy(y, wrong) == 0.0
    blanks_wrong = y.copy()
    blanks_wrong[y == 0] = 3  # errors on blank steps do not count
    assert copy_memory.recall_accuracy(y, blanks_wrong) == 1.0


def test_adding_layout_and_target(rng):
    x, y = adding.adding_batch(rng, 300, 40)
    assert x.shape == (300, 40, 2) and y.shape == (300, 1)
    markers = x[..., 1]
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :20].sum(axis=1) == 1).all() and (markers[:, 20:].sum(axis=1) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * markers).sum(axis=1), rtol=1e-6)


def test_adding_baseline_is_the_mse_of_predicting_the_mean(rng):
    _, y = adding.adding_batch(rng, 200_000, 10)
    assert np.mean((y - 1.0) ** 2) == pytest.approx(adding.BASELINE_MSE, rel=0.02)
    assert adding.mse(y, np.ones_like(y)) == pytest.approx(np.mean((y - 1.0) ** 2))


def test_task_data_is_seeded_and_held_out_sets_differ_from_training():
    a, b = adding.make(seq_len=10, seed=1), adding.make(seq_len=10, seed=1)
    np.testing.assert_array_equal(a.valid[0], b.valid[0])
    assert not np.array_equal(a.valid[0], a.test[0])
    c = copy_memory.make(seq_len=10, seed=2)
    assert c.seq_len == 30 and c.solved(0.99) and not c.solved(0.98) and not c.solved(float("nan"))
    three = copy_memory.make(seq_len=10, seed=2, n_copy=3)
    assert three.seq_len == 16 and three.valid[0].shape == (1000, 16)
    assert c.data_checksum == "synthetic:copy-v1:T10:vd0:seed2"  # Arjovsky's K keeps its old checksum
    assert three.data_checksum == "synthetic:copy-v1:T10:vd0:K3:seed2"
    assert adding.make(seq_len=10, seed=0, target=0.05).solved(0.04)
