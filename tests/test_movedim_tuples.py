"""movedim with tuples of dims (torch.movedim / numpy.moveaxis), and an empty-batch pinv/svd."""
import numpy as np
import pytest

import xbp
from xbp.autograd import gradcheck
from conftest import rand, to_np


@pytest.mark.parametrize("src,dst", [((0, 1), (2, 3)), ((0, -1), (-1, 0)), ((), ()), (1, -1), ([2], [0])])
def test_movedim_matches_numpy_moveaxis(device, src, dst):
    x, a = rand((2, 3, 4, 1), device)
    np.testing.assert_array_equal(to_np(xbp.movedim(x, src, dst)), np.moveaxis(a, src, dst))
    assert gradcheck(lambda t: xbp.movedim(t, src, dst), (x,))


def test_movedim_refuses_repeats_and_length_mismatch(device):
    x, _ = rand((2, 3, 4), device)
    with pytest.raises(RuntimeError, match="multiple times"):
        xbp.movedim(x, (0, 0), (1, 2))
    with pytest.raises(ValueError, match="same number"):
        xbp.movedim(x, (0, 1), (2,))
    with pytest.raises(IndexError):
        xbp.movedim(x, (0, 3), (1, 2))


def test_pinv_of_an_empty_batch(device):
    x = xbp.zeros(0, 2, 3, device=device, dtype=xbp.float64, requires_grad=True)
    assert xbp.linalg.pinv(x).shape == (0, 3, 2)
