"""XXH3-64 (seed 0, default secret) in numba, for inputs longer than 128 bytes.

The ingest header kernel (:mod:`sequencer.ingest_headers`) checks every frame's checksum of a
drain in one call with it, instead of one ``xxhash.xxh3_64_intdigest`` call from Python per
frame. An ingest frame's checksum covers bytes ``16 .. end``, ``16 + 128 * count`` bytes, so
only the 129..240-byte and the long (> 240) forms of XXH3 are needed; the result is bit for
bit ``xxhash.xxh3_64_intdigest`` of the same bytes (the reference the tests compare it with).
The code follows the scalar path of the XXH3 specification (xxhash 0.8).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["xxh3_64", "load_u64", "MIN_LENGTH"]

# The shortest input handled here; shorter ones take XXH3's other forms.
MIN_LENGTH = 129

_SECRET = np.frombuffer(bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e"
), np.uint8)
assert len(_SECRET) == 192

_P32_1 = np.uint64(0x9E3779B1)
_P32_2 = np.uint64(0x85EBCA77)
_P32_3 = np.uint64(0xC2B2AE3D)
_P64_1 = np.uint64(0x9E3779B185EBCA87)
_P64_2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P64_3 = np.uint64(0x165667B19E3779F9)
_P64_4 = np.uint64(0x85EBCA77C2B2AE63)
_P64_5 = np.uint64(0x27D4EB2F165667C5)
_PMX1 = np.uint64(0x165667919E3779F9)
_M32 = np.uint64(0xFFFFFFFF)
_S8, _S16, _S24, _S32 = np.uint64(8), np.uint64(16), np.uint64(24), np.uint64(32)
_S37, _S40, _S47 = np.uint64(37), np.uint64(40), np.uint64(47)
_S48, _S56 = np.uint64(48), np.uint64(56)
_STRIPE = 64
_SECRET_SIZE = 192
_STRIPES_PER_BLOCK = (_SECRET_SIZE - _STRIPE) // 8
_BLOCK = _STRIPE * _STRIPES_PER_BLOCK


@njit(inline="always")
def load_u64(b, p):
    """Little-endian uint64 at byte ``p`` of the uint8 array ``b``."""
    return (np.uint64(b[p]) | (np.uint64(b[p + 1]) << _S8) | (np.uint64(b[p + 2]) << _S16)
            | (np.uint64(b[p + 3]) << _S24) | (np.uint64(b[p + 4]) << _S32) | (np.uint64(b[p + 5]) << _S40)
            | (np.uint64(b[p + 6]) << _S48) | (np.uint64(b[p + 7]) << _S56))


@njit(inline="always")
def _mul128_fold64(a, b):
    """Low 64 bits xor high 64 bits of the 128-bit product ``a * b``."""
    a_lo, a_hi = a & _M32, a >> _S32
    b_lo, b_hi = b & _M32, b >> _S32
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    hi_hi = a_hi * b_hi
    cross = (lo_lo >> _S32) + (hi_lo & _M32) + lo_hi
    upper = (hi_lo >> _S32) + (cross >> _S32) + hi_hi
    lower = (cross << _S32) | (lo_lo & _M32)
    return lower ^ upper


@njit(inline="always")
def _avalanche(h):
    h ^= h >> _S37
    h *= _PMX1
    return h ^ (h >> _S32)


@njit(inline="always")
def _mix16(b, p, s):
    return _mul128_fold64(load_u64(b, p) ^ load_u64(_SECRET, s), load_u64(b, p + 8) ^ load_u64(_SECRET, s + 8))


@njit(inline="always")
def _accumulate_512(acc, b, p, s):
    for i in range(8):
        data_val = load_u64(b, p + 8 * i)
        data_key = data_val ^ load_u64(_SECRET, s + 8 * i)
        acc[i ^ 1] += data_val
        acc[i] += (data_key & _M32) * (data_key >> _S32)


@njit(inline="always")
def _scramble(acc):
    for i in range(8):
        a = acc[i]
        a ^= a >> _S47
        a ^= load_u64(_SECRET, _SECRET_SIZE - _STRIPE + 8 * i)
        acc[i] = a * _P32_1


@njit(cache=True)
def _len_129_240(b, p, n):
    acc = np.uint64(n) * _P64_1
    rounds = n // 16
    for i in range(8):
        acc += _mix16(b, p + 16 * i, 16 * i)
    acc = _avalanche(acc)
    for i in range(8, rounds):
        acc += _mix16(b, p + 16 * i, 16 * (i - 8) + 3)
    acc += _mix16(b, p + n - 16, 136 - 17)
    return _avalanche(acc)


@njit(cache=True)
def _long(b, p, n):
    acc = np.empty(8, np.uint64)
    acc[0], acc[1], acc[2], acc[3] = _P32_3, _P64_1, _P64_2, _P64_3
    acc[4], acc[5], acc[6], acc[7] = _P64_4, _P32_2, _P64_5, _P32_1
    blocks = (n - 1) // _BLOCK
    for blk in range(blocks):
        start = p + blk * _BLOCK
        for s in range(_STRIPES_PER_BLOCK):
            _accumulate_512(acc, b, start + s * _STRIPE, s * 8)
        _scramble(acc)
    start = p + blocks * _BLOCK
    for s in range(((n - 1) - _BLOCK * blocks) // _STRIPE):
        _accumulate_512(acc, b, start + s * _STRIPE, s * 8)
    _accumulate_512(acc, b, p + n - _STRIPE, _SECRET_SIZE - _STRIPE - 7)
    result = np.uint64(n) * _P64_1
    for i in range(4):
        result += _mul128_fold64(acc[2 * i] ^ load_u64(_SECRET, 11 + 16 * i), acc[2 * i + 1] ^ load_u64(_SECRET, 11 + 16 * i + 8))
    return _avalanche(result)


@njit(cache=True)
def xxh3_64(b, p, n):
    """XXH3-64 of the ``n`` bytes at ``p`` of the uint8 array ``b`` (``n >= MIN_LENGTH``), as uint64."""
    if n <= 240:
        return _len_129_240(b, p, n)
    return _long(b, p, n)
