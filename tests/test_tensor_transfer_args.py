"""PyTorch's transfer arguments on Tensor.to/.cuda/.pin_memory/.is_pinned (PyTorch 2.13's
signatures: to(device, dtype, non_blocking, copy), cuda(device, non_blocking))."""
import numpy as np
import pytest

import xbp
from xbp._backend import cuda_available


def test_to_accepts_non_blocking_and_positional_flags(device):
    t = xbp.ones(2, 3, device=device)
    assert t.to(device, non_blocking=True) is t
    c = t.to(device, xbp.float64, True, True)            # non_blocking=True, copy=True
    assert c.dtype == xbp.float64 and c is not t
    same = t.to(device, t.dtype, False, True)            # copy=True with nothing to convert: a copy
    assert same is not t
    np.testing.assert_array_equal(same.numpy() if device == "cpu" else same.cpu().numpy(), np.ones((2, 3)))
    assert t.to(memory_format=None) is t


@pytest.mark.skipif(cuda_available(), reason="checks the CPU-only behaviour")
def test_pinning_without_a_gpu_is_refused_like_pytorch():
    t = xbp.ones(3)
    assert t.is_pinned() is False
    with pytest.raises(RuntimeError, match="no CUDA device"):
        t.pin_memory()
    with pytest.raises(xbp.DeviceError):
        t.cuda(non_blocking=True)
