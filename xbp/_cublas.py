"""cuBLAS GEMM called directly (ctypes), for matmuls inside a CUDA-graph capture.

CuPy refuses to call cuBLAS while a stream is being captured, so a captured step cannot use
``cupy.matmul``. This module calls ``cublas{S,D}gemm_v2`` / ``cublas{S,D}gemmStridedBatched`` on
CuPy's own cuBLAS handle, whose stream the capture code sets before capture begins
(``set_stream``); see ../shared/probes/cuda_graph_cublas.py for the probe that worked on an H100.

Layout. xbp's arrays are row-major; cuBLAS is column-major. A row-major ``(r, c)`` matrix with
row stride ``ld`` is, read column-major, its transpose ``(c, r)`` with leading dimension ``ld``.
So the row-major product ``C = A @ B`` (``m x k`` times ``k x n``) is computed as the column-major
``C^T = B^T A^T``: cuBLAS's first operand is B, its second A, its m and n are our n and m, and
C (contiguous, ``ldc = n``) needs no transpose. An operand that is the transpose of a row-major
matrix (``W.T``: unit row stride) is passed with ``op = T`` and its column stride as leading
dimension, so no copy is made; any other layout is copied to contiguous first (a kernel, which
capture allows). Batch dimensions are broadcast and flattened to one stride per operand (0 for an
operand broadcast over the batch), one strided-batched call.

The layout logic (`matmul`) takes the GEMM as an argument (`gemm`) and the pointer reader
(`pointer`), so tests run it on NumPy with a GEMM written in NumPy that reads raw memory by the
same (pointer, leading dimension, batch stride) rules cuBLAS documents.
"""
from __future__ import annotations

import ctypes
import math

import numpy as np

# cublasOperation_t
OP_N, OP_T = 0, 1
_LIB: list = []          # the loaded libcublas (found once)


def _itemsize(a) -> int:
    return int(a.dtype.itemsize)


def _layout(a):
    """How a 2-D (or batched, last two dims) row-major operand is seen by cuBLAS: (op, ld) with op
    OP_N when the rows are contiguous (row stride ld), OP_T when the columns are (a transposed
    row-major matrix, column stride ld), or None when neither (copy it first)."""
    r, c = a.shape[-2], a.shape[-1]
    s = _itemsize(a)
    s0, s1 = a.strides[-2], a.strides[-1]
    if s0 % s or s1 % s:
        return None
    s0, s1 = s0 // s, s1 // s
    # rows contiguous: element (i, j) at i*ld + j, ld >= max(1, c) (a size-1 dim's stride is free)
    if (s1 == 1 or c == 1) and (r == 1 or s0 >= max(1, c)):
        return OP_N, (s0 if r > 1 else max(1, c))
    # columns contiguous: element (i, j) at i + j*ld, ld >= max(1, r)
    if (s0 == 1 or r == 1) and (c == 1 or s1 >= max(1, r)):
        return OP_T, (s1 if c > 1 else max(1, r))
    return None


def _batch_stride(a, batch_shape):
    """One element stride for `a`'s (already broadcast) batch dims flattened, or None if they do
    not flatten to one stride. 0 for an operand broadcast over the whole batch."""
    dims = [(n, st) for n, st in zip(batch_shape, a.strides[:-2]) if n != 1]
    if not dims:
        return 0
    s = _itemsize(a)
    if any(st % s for _, st in dims):
        return None
    inner = dims[-1][1] // s
    expect = inner
    for n, st in reversed(dims):
        if st // s != expect:
            return None
        expect = expect * n
    if inner == 0 and any(st != 0 for _, st in dims):
        return None
    return inner


def supports(a, b) -> bool:
    """Whether `matmul` takes (a, b): float32 or float64, the same dtype, at least 1-D each."""
    return (a.dtype == b.dtype and a.dtype.char in "fd" and a.ndim >= 1 and b.ndim >= 1)


def matmul(xp, a, b, gemm=None, pointer=None):
    """``xp.matmul(a, b)`` (NumPy's semantics: 1-D promotion, broadcast batch dims) computed by one
    cuBLAS GEMM call. `gemm` is the callable `cublas_gemm` (the default: real cuBLAS); `pointer`
    reads an array's device address (default ``a.data.ptr``, CuPy's)."""
    gemm = gemm or cublas_gemm
    pointer = pointer or (lambda v: v.data.ptr)
    if not supports(a, b):
        raise TypeError(f"_cublas.matmul: float32/float64 operands of one dtype only, got {a.dtype} and {b.dtype}")
    a_vec, b_vec = a.ndim == 1, b.ndim == 1
    if a_vec:
        a = xp.reshape(a, (1, a.shape[0]))
    if b_vec:
        b = xp.reshape(b, (b.shape[0], 1))
    m, k = a.shape[-2], a.shape[-1]
    k2, n = b.shape[-2], b.shape[-1]
    if k != k2:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} ({k} != {k2})")
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    out_shape = batch + (m, n)
    if m == 0 or n == 0 or k == 0 or math.prod(batch) == 0:
        c = xp.zeros(out_shape, dtype=a.dtype)
    else:
        a = xp.broadcast_to(a, batch + (m, k))
        b = xp.broadcast_to(b, batch + (k, n))
        la, sa = _layout(a), _batch_stride(a, batch)
        if la is None or sa is None:
            a = xp.ascontiguousarray(a) if hasattr(xp, "ascontiguousarray") else xp.asarray(a, copy=True)
            la, sa = _layout(a), _batch_stride(a, batch)
        lb, sb = _layout(b), _batch_stride(b, batch)
        if lb is None or sb is None:
            b = xp.ascontiguousarray(b) if hasattr(xp, "ascontiguousarray") else xp.asarray(b, copy=True)
            lb, sb = _layout(b), _batch_stride(b, batch)
        c = xp.empty(out_shape, dtype=a.dtype)
        nbatch = math.prod(batch)
        # column-major C^T (n x m) = op(B)^T-view (n x k) times op(A)^T-view (k x m)
        gemm(a.dtype.char, lb[0], la[0], n, m, k, pointer(b), lb[1], sb, pointer(a), la[1], sa,
             pointer(c), n, m * n, nbatch)
    if a_vec and b_vec:
        return xp.reshape(c, c.shape[:-2])
    if a_vec:
        return xp.reshape(c, c.shape[:-2] + (n,))
    if b_vec:
        return xp.reshape(c, c.shape[:-2] + (m,))
    return c


# --- the real cuBLAS ------------------------------------------------------------------------------
def _library():
    if not _LIB:
        import cupy
        cupy.cuda.device.get_cublas_handle()        # loads libcublas into the process
        path = None
        with open("/proc/self/maps") as f:
            for line in f:
                if "libcublas.so" in line and "libcublasLt" not in line:
                    path = line.split()[-1]
                    break
        if path is None:
            raise RuntimeError("xbp._cublas: libcublas is not loaded in this process (CuPy's cuBLAS handle made "
                               "none); CUDA-graph capture needs it for matmuls")
        lib = ctypes.CDLL(path)
        for name, ct in (("S", ctypes.c_float), ("D", ctypes.c_double)):
            p = ctypes.POINTER(ct)
            f = getattr(lib, f"cublas{name}gemm_v2")
            f.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                          p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, p, ctypes.c_void_p,
                          ctypes.c_int]
            f.restype = ctypes.c_int
            g = getattr(lib, f"cublas{name}gemmStridedBatched")
            g.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                          p, ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong, ctypes.c_void_p, ctypes.c_int,
                          ctypes.c_longlong, p, ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong, ctypes.c_int]
            g.restype = ctypes.c_int
        _LIB.append(lib)
    return _LIB[0]


def handle():
    """CuPy's cuBLAS handle for the current device."""
    import cupy
    return cupy.cuda.device.get_cublas_handle()


def set_stream(stream_ptr: int) -> None:
    """Point CuPy's cuBLAS handle at a stream (before a capture on that stream begins)."""
    import cupy
    cupy.cuda.cublas.setStream(handle(), stream_ptr)


def cublas_gemm(char, transa, transb, m, n, k, a_ptr, lda, stride_a, b_ptr, ldb, stride_b, c_ptr, ldc,
                stride_c, batch):
    """Column-major ``C = op(A) op(B)`` (alpha 1, beta 0) by cuBLAS on CuPy's handle; `char` is
    'f' (Sgemm) or 'd' (Dgemm); one call of the strided-batched form when ``batch > 1``."""
    lib = _library()
    ct, name = (ctypes.c_float, "S") if char == "f" else (ctypes.c_double, "D")
    one, zero = ct(1.0), ct(0.0)
    h = handle()
    if batch == 1:
        st = getattr(lib, f"cublas{name}gemm_v2")(h, transa, transb, m, n, k, ctypes.byref(one), a_ptr, lda,
                                                   b_ptr, ldb, ctypes.byref(zero), c_ptr, ldc)
    else:
        st = getattr(lib, f"cublas{name}gemmStridedBatched")(
            h, transa, transb, m, n, k, ctypes.byref(one), a_ptr, lda, stride_a, b_ptr, ldb, stride_b,
            ctypes.byref(zero), c_ptr, ldc, stride_c, batch)
    if st != 0:
        raise RuntimeError(f"cublas{name}gemm failed with status {st} (m={m}, n={n}, k={k}, batch={batch})")


def numpy_gemm(char, transa, transb, m, n, k, a_ptr, lda, stride_a, b_ptr, ldb, stride_b, c_ptr, ldc,
               stride_c, batch):
    """cuBLAS's documented GEMM semantics on host memory, in NumPy (a test double for
    `cublas_gemm`): matrices are read from raw addresses, column-major with the given leading
    dimensions and batch strides (elements), and C is written in place."""
    dt = np.dtype(np.float32 if char == "f" else np.float64)
    s = dt.itemsize

    def view(ptr, rows, cols, ld, stride):
        # the bytes spanned by a batch of column-major (rows x cols) matrices with leading dim ld
        span = ((batch - 1) * stride + (cols - 1) * ld + rows) * s
        buf = (ctypes.c_char * span).from_address(ptr)
        return np.ndarray((batch, rows, cols), dtype=dt, buffer=buf, strides=(stride * s, s, ld * s))
    ra, ca = (m, k) if transa == OP_N else (k, m)
    rb, cb = (k, n) if transb == OP_N else (n, k)
    assert lda >= max(1, ra) and ldb >= max(1, rb) and ldc >= max(1, m), (lda, ra, ldb, rb, ldc, m)
    A = view(a_ptr, ra, ca, lda, stride_a)
    B = view(b_ptr, rb, cb, ldb, stride_b)
    C = view(c_ptr, m, n, ldc, stride_c)
    opA = A if transa == OP_N else np.swapaxes(A, 1, 2)
    opB = B if transb == OP_N else np.swapaxes(B, 1, 2)
    C[...] = np.matmul(opA.astype(np.float64), opB.astype(np.float64)).astype(dt)
