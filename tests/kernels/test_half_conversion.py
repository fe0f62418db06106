"""float16 -> float32 in the kernels, both code paths, against NumPy's conversion.

The portable path (integer operations) is what targets without F16C compile; before it, LLVM
called compiler-rt's ``__extendhfsf2`` there, which numba's JIT cannot resolve (issue 17).
"""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit, types
from numba.extending import intrinsic

from prunebench.kernels._simd import half_bits_to_float, half_is_native
from llvmlite import ir


def _converter(native, lanes):
    """An njit function converting uint16 bits to float32, ``lanes`` at a time (0: scalar)."""

    @intrinsic
    def convert(typingctx, src, dst, i):
        def codegen(context, builder, sig, args):
            sptr = context.make_array(sig.args[0])(context, builder, args[0]).data
            dptr = context.make_array(sig.args[1])(context, builder, args[1]).data
            if lanes:
                sptr = builder.bitcast(builder.gep(sptr, [args[2]]), ir.VectorType(ir.IntType(16), lanes).as_pointer())
                dptr = builder.bitcast(builder.gep(dptr, [args[2]]), ir.VectorType(ir.FloatType(), lanes).as_pointer())
            else:
                sptr, dptr = builder.gep(sptr, [args[2]]), builder.gep(dptr, [args[2]])
            builder.store(half_bits_to_float(builder, builder.load(sptr, align=2), native=native), dptr, align=4)
            return context.get_dummy_value()

        return types.none(src, dst, types.int64), codegen

    step = lanes or 1

    @njit
    def run(src, dst):
        for i in range(0, src.size, step):
            convert(src, dst, i)

    return run


@pytest.mark.parametrize("lanes", [0, 16], ids=["scalar", "vector16"])
@pytest.mark.parametrize("native", [False, True], ids=["portable", "hardware"])
def test_every_float16_bit_pattern(native, lanes):
    if native and not half_is_native():
        pytest.skip("this target has no hardware float16 conversion")
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    out = np.full(bits.size, -1.0, np.float32)
    _converter(native, lanes)(bits, out)
    ref = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(ref)
    assert nan.sum() == 2 * 1023
    np.testing.assert_array_equal(out[~nan].view(np.uint32), ref[~nan].view(np.uint32))  # bit-exact
    assert np.isnan(out[nan]).all()
    if not native:  # integer operations keep the payload, as NumPy does
        np.testing.assert_array_equal(out[nan].view(np.uint32), ref[nan].view(np.uint32))
    # spot values from the IEEE binary16 table
    assert out[0x3C00] == 1.0 and out[0xC000] == -2.0 and out[0x7BFF] == 65504.0
    assert out[0x0001] == 2.0**-24 and out[0x0400] == 2.0**-14 and out[0x7C00] == np.inf
    assert out[0x8000] == 0.0 and np.signbit(out[0x8000])
