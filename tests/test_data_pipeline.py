"""xbp.data's PyTorch surface without worker processes: datasets, random_split, samplers,
default_collate / default_convert, and the xbp.utils.data paths. Checked against written-out
expectations and, where torch is installed, against torch.utils.data (structures, lengths and
errors; not random streams: the generators differ)."""
import collections
import importlib

import numpy as np
import pytest

import xbp
from xbp.data import (
    BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset, IterableDataset, RandomSampler,
    SequentialSampler, StackDataset, Subset, SubsetRandomSampler, TensorDataset, WeightedRandomSampler,
    default_collate, default_convert, random_split,
)
from conftest import to_np


class Range(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


# --- datasets ---------------------------------------------------------------------------------
def test_subset_concat_chain_stack():
    s = Subset(Range(10), [7, 2, 5])
    assert len(s) == 3 and [s[i] for i in range(3)] == [7, 2, 5] and s.__getitems__([2, 0]) == [5, 7]
    c = ConcatDataset([Range(3), Range(2), Range(4)])
    assert len(c) == 9 and c.cumulative_sizes == [3, 5, 9]
    assert [c[i] for i in range(9)] == [0, 1, 2, 0, 1, 0, 1, 2, 3]
    assert c[-1] == 3 and c[-9] == 0
    with pytest.raises(ValueError, match="absolute value of index"):
        c[-10]
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="IterableDataset"):
        ConcatDataset([Stream(2)])
    assert [(Range(2) + Range(1))[i] for i in range(3)] == [0, 1, 0]
    assert list(ChainDataset([Stream(2), Stream(3)])) == [0, 1, 0, 1, 2] == list(Stream(2) + Stream(3))
    st = StackDataset(Range(3), Subset(Range(5), [4, 3, 2]))
    assert len(st) == 3 and st[1] == (1, 3)
    assert StackDataset(a=Range(2), b=Range(2))[1] == {"a": 1, "b": 1}
    with pytest.raises(ValueError, match="size mismatch"):
        StackDataset(Range(2), Range(3))


def test_subset_of_a_tensor_dataset_gathers_in_one_take(monkeypatch):
    X = np.arange(30, dtype=np.float32).reshape(10, 3)
    ds = TensorDataset(xbp.tensor(X), xbp.tensor(np.arange(10)))
    sub = Subset(ds, [9, 0, 4, 4, 7])
    monkeypatch.setattr(TensorDataset, "__getitem__", lambda self, i: pytest.fail("per-sample indexing"))
    (xb, yb), = list(DataLoader(sub, batch_size=5))
    np.testing.assert_array_equal(to_np(yb), [9, 0, 4, 4, 7])
    np.testing.assert_array_equal(to_np(xb), X[[9, 0, 4, 4, 7]])


# --- random_split -------------------------------------------------------------------------------
@pytest.mark.parametrize("n,lengths,expected", [
    (10, [0.8, 0.2], [8, 2]),
    (10, [0.33, 0.33, 0.34], [4, 3, 3]),      # floors 3,3,3; the remainder 1 goes to the first split
    (7, [0.5, 0.5], [4, 3]),
    (5, [2, 3], [2, 3]),
    (3, [0.1, 0.9], [1, 2]),                  # floors 0, 2; remainder to the first
])
def test_random_split_lengths_cover_and_are_disjoint(n, lengths, expected):
    parts = random_split(Range(n), lengths, generator=np.random.default_rng(0))
    assert [len(p) for p in parts] == expected
    seen = [p[i] for p in parts for i in range(len(p))]
    assert sorted(seen) == list(range(n))                 # every index exactly once
    torch = pytest.importorskip("torch")
    tparts = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in tparts] == expected


def test_random_split_generator_and_errors():
    a = [list(p.indices) for p in random_split(Range(20), [0.5, 0.5], generator=np.random.default_rng(3))]
    b = [list(p.indices) for p in random_split(Range(20), [0.5, 0.5], generator=np.random.default_rng(3))]
    assert a == b
    xbp.manual_seed(1)
    c = [list(p.indices) for p in random_split(Range(20), [10, 10])]
    xbp.manual_seed(1)
    assert [list(p.indices) for p in random_split(Range(20), [10, 10])] == c
    with pytest.raises(ValueError, match="does not equal the length"):
        random_split(Range(5), [2, 2])
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        random_split(Range(5), [2, 3], generator=42)
    with pytest.warns(UserWarning, match="length of split at index 1 is 0"):
        random_split(Range(1), [0.5, 0.5])


# --- samplers -----------------------------------------------------------------------------------
def test_sequential_and_random_sampler():
    assert list(SequentialSampler(Range(4))) == [0, 1, 2, 3]
    s = RandomSampler(Range(50), generator=np.random.default_rng(0))
    e0, e1 = list(s), list(s)
    assert sorted(e0) == list(range(50)) == sorted(e1) and e0 != e1 and len(s) == 50
    # more samples than data without replacement: whole permutations, then a part of one
    s = RandomSampler(Range(4), num_samples=10, generator=np.random.default_rng(1))
    out = list(s)
    assert len(out) == len(s) == 10
    assert sorted(out[:4]) == [0, 1, 2, 3] and sorted(out[4:8]) == [0, 1, 2, 3] and len(set(out[8:])) == 2
    r = list(RandomSampler(Range(3), replacement=True, num_samples=200, generator=np.random.default_rng(2)))
    assert len(r) == 200 and set(r) == {0, 1, 2}
    assert list(RandomSampler(Range(5), generator=np.random.default_rng(7))) == \
        list(RandomSampler(Range(5), generator=np.random.default_rng(7)))


@pytest.mark.parametrize("kwargs,exc", [({"replacement": 1}, TypeError), ({"num_samples": 0}, ValueError),
                                         ({"num_samples": 2.5}, ValueError)])
def test_random_sampler_validation_matches_torch(kwargs, exc):
    with pytest.raises(exc):
        RandomSampler(Range(3), **kwargs)
    torch = pytest.importorskip("torch")
    with pytest.raises(exc):
        torch.utils.data.RandomSampler(range(3), **kwargs)


def test_generator_objects_holding_a_numpy_generator():
    class Holder:                        # what xbp.Generator on the CPU exposes: .native
        def __init__(self, seed):
            self.native = np.random.default_rng(seed)

    a = list(RandomSampler(Range(30), generator=Holder(5)))
    assert a == list(RandomSampler(Range(30), generator=Holder(5))) and sorted(a) == list(range(30))
    if hasattr(xbp, "Generator"):
        g = xbp.Generator().manual_seed(3)
        b = list(RandomSampler(Range(30), generator=g))
        assert b == list(RandomSampler(Range(30), generator=xbp.Generator().manual_seed(3)))
        assert b != list(RandomSampler(Range(30), generator=g))          # the generator advanced
    with pytest.raises(TypeError, match="generator must be"):
        list(RandomSampler(Range(3), generator="seed"))


def test_subset_random_sampler():
    idx = [10, 3, 8, 21]
    s = SubsetRandomSampler(idx, generator=np.random.default_rng(0))
    assert sorted(s) == sorted(idx) and len(s) == 4


def test_weighted_random_sampler_frequencies():
    w = [0.0, 1.0, 2.0, 3.0, 4.0]
    n = 40000
    draws = np.array(list(WeightedRandomSampler(w, n, generator=np.random.default_rng(0))))
    freq = np.bincount(draws, minlength=5) / n
    p = np.array(w) / sum(w)
    assert freq[0] == 0                                       # a zero weight is never drawn
    # binomial standard error <= 0.0025 at n=40000: 5 sigma
    np.testing.assert_allclose(freq, p, atol=0.0125)
    nr = list(WeightedRandomSampler(xbp.tensor(w), 4, replacement=False, generator=np.random.default_rng(1)))
    assert sorted(nr) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler(w, 5, replacement=False)
    with pytest.raises(ValueError, match="1d sequence"):
        WeightedRandomSampler([[1.0, 2.0]], 2)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedRandomSampler([1.0, -1.0], 2)
    with pytest.raises(ValueError, match="positive"):
        WeightedRandomSampler([0.0, 0.0], 2)
    with pytest.raises(ValueError, match="num_samples"):
        WeightedRandomSampler([1.0], 0)


@pytest.mark.parametrize("n,bs,drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                                            (2, 5, True), (0, 2, False)])
def test_batch_sampler_matches_torch(n, bs, drop_last):
    ours = list(BatchSampler(SequentialSampler(range(n)), bs, drop_last))
    expected = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
    if drop_last:
        expected = [b for b in expected if len(b) == bs]
    assert ours == expected and len(BatchSampler(SequentialSampler(range(n)), bs, drop_last)) == len(expected)
    torch = pytest.importorskip("torch")
    assert list(torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(n)), bs, drop_last)) == ours


def test_batch_sampler_validation():
    for bad in (0, -2, 1.5, True, None):
        with pytest.raises(ValueError, match="batch_size should be a positive integer"):
            BatchSampler(range(3), bad, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        BatchSampler(range(3), 2, 1)


# --- collate --------------------------------------------------------------------------------------
Point = collections.namedtuple("Point", "x y")


def _samples(lib):
    """The same samples for xbp and torch: NumPy arrays, numbers, strings, dicts, tuples, named
    tuples, lists, and lib tensors."""
    def t(a):
        return xbp.tensor(a) if lib == "xbp" else __import__("torch").tensor(a)
    return [
        [np.arange(3, dtype=np.float32) + i for i in range(2)],
        [1, 2, 3],
        [0.5, 1.5],
        [True, False],
        [np.float32(1.0), np.float32(2.0)],
        [np.int32(4), np.int32(5)],
        ["a", "b"],
        [{"x": np.ones(2), "label": i, "name": f"s{i}"} for i in range(3)],
        [(np.zeros((2, 2)), i) for i in range(2)],
        [Point(np.ones(1), i) for i in range(2)],
        [[i, float(i), "z"] for i in range(2)],
        [(t(np.arange(4.0)), {"k": [i, i + 1]}) for i in range(2)],
    ]


def _structure(x):
    """A comparable description: containers by type name, tensors by (shape, dtype name)."""
    mod = type(x).__module__
    if isinstance(x, xbp.Tensor) or mod.startswith("torch"):
        dt = str(x.dtype).replace("torch.", "")
        return ("tensor", tuple(x.shape), dt)
    if isinstance(x, dict):
        return ("dict", {k: _structure(v) for k, v in x.items()})
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return (type(x).__name__, [_structure(v) for v in x])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_structure(v) for v in x])
    return (type(x).__name__, x)


@pytest.mark.parametrize("case", range(12))
def test_default_collate_structure_matches_torch(case):
    ours = default_collate(_samples("xbp")[case])
    torch = pytest.importorskip("torch")
    theirs = torch.utils.data.default_collate(_samples("torch")[case])
    assert _structure(ours) == _structure(theirs)


def test_default_collate_values_written_out():
    x, y = default_collate([(np.array([1.0, 2.0]), 3), (np.array([4.0, 5.0]), 6)])
    np.testing.assert_array_equal(to_np(x), [[1, 2], [4, 5]])
    assert y.dtype == np.int64 and y.tolist() == [3, 6]
    f = default_collate([0.25, 0.5])
    assert f.dtype == np.float64 and f.tolist() == [0.25, 0.5]
    p = default_collate([Point(1, "a"), Point(2, "b")])
    assert isinstance(p, Point) and p.x.tolist() == [1, 2] and p.y == ("a", "b")
    d = default_collate([{"a": xbp.tensor([1.0])}, {"a": xbp.tensor([2.0])}])
    assert d["a"].shape == (2, 1)


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([xbp.zeros(2), xbp.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="dtype object"):
        default_collate([np.array([object()]), np.array([object()])])
    with pytest.raises(TypeError, match="found"):
        default_collate([object(), object()])


@pytest.mark.parametrize("sample", [(np.arange(2), 3, "a"), {"k": np.float64(2.0)}, [np.ones(2), [np.zeros(1)]],
                                    Point(np.ones(1), 2), 5, "s"])
def test_default_convert_structure_matches_torch(sample):
    ours = default_convert(sample)
    torch = pytest.importorskip("torch")
    assert _structure(ours) == _structure(torch.utils.data.default_convert(sample))


def test_dataloader_collates_generic_samples_like_torch():
    class DictDS(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": np.full(3, i, dtype=np.float32), "y": i, "meta": (f"id{i}", float(i))}

    ours = list(DataLoader(DictDS(), batch_size=2))
    torch = pytest.importorskip("torch")
    theirs = list(torch.utils.data.DataLoader(DictDS(), batch_size=2))
    assert [_structure(b) for b in ours] == [_structure(b) for b in theirs]
    np.testing.assert_array_equal(to_np(ours[2]["x"]), theirs[2]["x"].numpy())


# --- module paths -------------------------------------------------------------------------------
@pytest.mark.parametrize("mod,names", [
    ("xbp.utils.data", ["DataLoader", "Dataset", "TensorDataset", "random_split", "RandomSampler",
                        "default_collate", "get_worker_info", "load_digits"]),
    ("xbp.utils.data.dataloader", ["DataLoader", "default_collate", "default_convert", "get_worker_info"]),
    ("xbp.utils.data.dataset", ["Dataset", "IterableDataset", "Subset", "ConcatDataset", "random_split"]),
    ("xbp.utils.data.sampler", ["Sampler", "BatchSampler", "WeightedRandomSampler", "SubsetRandomSampler"]),
])
def test_torch_utils_data_paths(mod, names):
    m = importlib.import_module(mod)
    for name in names:
        assert getattr(m, name) is getattr(xbp.data, name)


def test_distributed_sampler_is_imported_lazily():
    try:
        importlib.import_module("xbp.distributed.sampler")
    except ImportError:
        for mod in ("xbp.data", "xbp.utils.data", "xbp.utils.data.distributed"):
            with pytest.raises(ImportError, match="xbp.distributed.sampler"):
                getattr(importlib.import_module(mod), "DistributedSampler")
    else:
        from xbp.distributed.sampler import DistributedSampler
        from xbp.utils.data.distributed import DistributedSampler as D2
        assert xbp.data.DistributedSampler is DistributedSampler is D2
    with pytest.raises(AttributeError):
        xbp.utils.data.distributed.NoSuchName
