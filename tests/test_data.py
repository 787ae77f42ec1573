"""xbp.data: TensorDataset, DataLoader (batching, shuffling, one transfer per batch), load_digits."""
import builtins

import numpy as np
import pytest

import xbp
from xbp._backend import get_backend
from xbp.data import DataLoader, Dataset, TensorDataset, load_digits
from conftest import to_np


def _ds(n=10, device="cpu"):
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(xbp.tensor(X, device=device), xbp.tensor(y, device=device)), X, y


def test_tensor_dataset(device):
    ds, X, y = _ds(device=device)
    assert len(ds) == 10
    x3, y3 = ds[3]
    np.testing.assert_array_equal(to_np(x3), X[3])
    assert int(y3) == 3
    with pytest.raises(ValueError, match="size mismatch"):
        TensorDataset(xbp.zeros(3, 2), xbp.zeros(4))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    ds2 = TensorDataset(np.ones((4, 2)), [0, 1, 2, 3])       # arrays and lists are accepted
    assert len(ds2) == 4 and ds2.tensors[1].dtype == np.int64


@pytest.mark.parametrize("bs,drop_last,n_batches,last", [(3, False, 4, 1), (3, True, 3, 3), (5, False, 2, 5),
                                                         (1, False, 10, 1), (16, False, 1, 10), (16, True, 0, None)])
def test_batches_in_order(bs, drop_last, n_batches, last, device):
    ds, X, y = _ds(device=device)
    dl = DataLoader(ds, batch_size=bs, drop_last=drop_last)
    batches = list(dl)
    assert len(dl) == n_batches == len(batches)
    if batches:
        assert batches[-1][0].shape == (last, 3)
        xb = np.concatenate([to_np(b[0]) for b in batches])
        yb = np.concatenate([to_np(b[1]) for b in batches])
        np.testing.assert_array_equal(yb, y[:len(yb)])
        np.testing.assert_array_equal(xb, X[:len(yb)])
        assert batches[0][0].device == get_backend(device).device and batches[0][0].dtype == np.float32
        assert batches[0][1].dtype == np.int64


def test_shuffle_is_seeded_and_reshuffled_each_epoch():
    ds, X, y = _ds(50)
    dl = DataLoader(ds, batch_size=7, shuffle=True, seed=123)
    e0 = np.concatenate([to_np(b[1]) for b in dl])
    e1 = np.concatenate([to_np(b[1]) for b in dl])
    assert sorted(e0) == list(range(50)) and sorted(e1) == list(range(50))   # a permutation each epoch
    assert not np.array_equal(e0, e1) and not np.array_equal(e0, y)
    np.testing.assert_array_equal(e0, np.random.default_rng([123, 0]).permutation(50))   # the documented rule
    dl2 = DataLoader(ds, batch_size=7, shuffle=True, seed=123)
    np.testing.assert_array_equal(np.concatenate([to_np(b[1]) for b in dl2]), e0)
    np.testing.assert_array_equal(np.concatenate([to_np(b[1]) for b in dl2]), e1)
    # rows stay together
    for xb, yb in DataLoader(ds, batch_size=7, shuffle=True, seed=5):
        np.testing.assert_array_equal(to_np(xb), X[to_np(yb)])


def test_resume_at_an_epoch_boundary():
    ds, _, _ = _ds(20)
    dl = DataLoader(ds, batch_size=4, shuffle=True, seed=9)
    epochs = [np.concatenate([to_np(b[1]) for b in dl]) for _ in range(3)]
    dl2 = DataLoader(ds, batch_size=4, shuffle=True, seed=9)
    list(dl2)
    sd = dl2.state_dict()
    assert sd == {"epoch": 1, "seed": 9}
    dl3 = DataLoader(ds, batch_size=4, shuffle=True)
    dl3.load_state_dict(sd)
    np.testing.assert_array_equal(np.concatenate([to_np(b[1]) for b in dl3]), epochs[1])
    np.testing.assert_array_equal(np.concatenate([to_np(b[1]) for b in dl3]), epochs[2])


def test_shuffle_without_seed_follows_manual_seed():
    ds, _, _ = _ds(30)

    def epoch():
        return np.concatenate([to_np(b[1]) for b in DataLoader(ds, batch_size=8, shuffle=True)])

    xbp.manual_seed(7)
    a = epoch()
    xbp.manual_seed(7)
    np.testing.assert_array_equal(epoch(), a)
    assert not np.array_equal(epoch(), a)


def test_one_transfer_per_tensor_per_batch_and_no_per_sample_indexing(monkeypatch):
    """The batch is gathered on the source (host) array with one take, then moved once."""
    ds, X, y = _ds(12)
    target = xbp.tensor([0.0], device="strict").xp
    calls = []
    orig = target.from_numpy
    monkeypatch.setattr(target, "from_numpy", lambda a: (calls.append(a.shape), orig(a))[1])
    monkeypatch.setattr(TensorDataset, "__getitem__", lambda self, i: pytest.fail("per-sample indexing"))
    dl = DataLoader(ds, batch_size=5, shuffle=True, seed=0, device="strict")
    batches = list(dl)
    assert calls == [(5, 3), (5,), (5, 3), (5,), (2, 3), (2,)]
    xb, yb = batches[0]
    assert xb.device == "strict" and yb.device == "strict"
    np.testing.assert_array_equal(to_np(xb), X[to_np(yb)])


def test_device_none_keeps_the_data_where_it_is(device):
    ds, _, _ = _ds(device=device)
    xb, _ = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.device == get_backend(device).device


class Squares(Dataset):
    """A generic map-style dataset: samples are (Tensor, int, float)."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return xbp.tensor([float(i), float(i * i)]), i, 0.5 * i


def test_generic_dataset_is_collated(device):
    batches = list(DataLoader(Squares(), batch_size=3, device=device))
    assert len(batches) == 3
    x, k, h = batches[1]
    np.testing.assert_array_equal(to_np(x), [[3, 9], [4, 16], [5, 25]])
    np.testing.assert_array_equal(to_np(k), [3, 4, 5])
    np.testing.assert_allclose(to_np(h), [1.5, 2.0, 2.5])
    assert x.device == get_backend(device).device and k.device == get_backend(device).device and k.dtype == np.int64
    assert batches[2][0].shape == (1, 2)


def test_batch_size_validation():
    ds, _, _ = _ds()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    # batch_size=None is PyTorch's "no automatic batching": one sample at a time, not an error
    x0, y0 = next(iter(DataLoader(ds, batch_size=None)))
    assert x0.shape == (3,) and int(y0) == 0


def test_load_digits(device):
    pytest.importorskip("sklearn")
    (Xtr, ytr), (Xte, yte) = load_digits(device=device)
    assert Xtr.shape == (1437, 64) and Xte.shape == (360, 64)
    assert ytr.shape == (1437,) and yte.shape == (360,)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64 and Xtr.device == get_backend(device).device
    xs, ys = to_np(Xtr), to_np(ytr)
    assert xs.min() == 0.0 and xs.max() == 1.0
    assert set(ys.tolist()) == set(range(10))
    from sklearn.datasets import load_digits as sk
    d = sk()
    # the split is a permutation of the 1,797 samples: every test row is an original row / 16
    allx = np.concatenate([xs, to_np(Xte)])
    ally = np.concatenate([ys, to_np(yte)])
    order = np.random.default_rng(0).permutation(1797)
    np.testing.assert_allclose(allx, (d.data / 16.0)[np.concatenate([order[360:], order[:360]])], rtol=1e-6)
    np.testing.assert_array_equal(ally, d.target[np.concatenate([order[360:], order[:360]])])
    (a, _), _ = load_digits(seed=0, device=device)
    np.testing.assert_array_equal(to_np(a), xs)                 # deterministic
    (b, _), (c, _) = load_digits(test_size=0.5, seed=1, dtype=xbp.float64)
    assert b.shape == (898, 64) and c.shape == (899, 64) and b.dtype == np.float64


def test_load_digits_without_sklearn(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *a, **k):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"pip install scikit-learn.*xbp\[examples\]"):
        load_digits()
