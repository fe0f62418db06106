"""Inner loops written in LLVM IR, where numba cannot produce vector code by itself.

Each is a numba ``@intrinsic`` called from the kernels like a function over arrays:

* :func:`expand_dot` -- the bitmap row dot product. ``llvm.masked.expandload`` turns 16 mask bits
  and the next ``popcount`` packed values into a dense 16-lane vector (one ``vexpandps``), so
  decoding costs a few instructions per 16 columns instead of a branch per bit.
* :func:`gather_axpy` -- ``acc[0:64] += v_k * T[col_k, 0:64]`` over a row's values, the SpMM
  inner loop. In numba the accumulators live in memory LLVM cannot prove unaliased, so it stays
  scalar; here they are up to eight ``<16 x float>`` registers. :func:`delta_axpy` is the same
  loop over a delta8 row, its columns a running sum of 8-bit gaps.
* :func:`delta_dot` -- the delta8 row dot product: 16 gaps at a time turned into columns by an
  in-register prefix sum, then one gather.
* :func:`ell_rows` -- one sliced-ELL slice, one row per vector lane (numba's loop over the 16-64
  rows of a slice is too short for LLVM's vectoriser, which wants 64 iterations).
* :func:`bsr_block_row` -- one BSR block row, whole blocks per vector.
* :func:`unpack_fields16`, :func:`load_le64`, :func:`trailing_zeros` -- bit-level helpers.

Values may be float32, int8 or float16 (passed as its uint16 bits); indices any integer dtype,
read as non-negative and below 2**31. The generic ``llvm.masked.*`` intrinsics are used, so
LLVM emits AVX-512 instructions on this machine and a slower but correct sequence elsewhere.

The module is over 500 lines on purpose: LLVM-IR builders, one per intrinsic, each read beside
the IR it emits (issue 19 accepts generated and LLVM-IR code as a long module).

numba caches a kernel by its own source file only; :mod:`._cache` drops the package's cache
when this module or ``_jit.py`` changes.
"""
from __future__ import annotations

import functools
from typing import Any

from llvmlite import ir
from numba import types as _types
from numba.core import cgutils
from numba.extending import intrinsic as _intrinsic

# numba's type objects and intrinsic decorator, as Any: their stubs do not describe them
types: Any = _types
intrinsic: Any = _intrinsic

_I1 = ir.IntType(1)
_I16 = ir.IntType(16)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_V16F = ir.VectorType(_F32, 16)

#: numba value dtype -> (LLVM element type, LLVM intrinsic suffix)
#: terms per step of :func:`gather_axpy`
UNROLL = 4

_VALUE_TYPES = {
    types.float32: (_F32, "f32"),
    types.int8: (ir.IntType(8), "i8"),
    types.uint16: (_I16, "i16"),  # float16 bits
}


class _VectorGEP(ir.Instruction):
    """``getelementptr elem, ptr base, <N x iK> offsets`` -> ``<N x ptr>`` (llvmlite's own
    ``gep`` only takes scalar indices); feeds ``llvm.masked.gather`` so LLVM emits a
    base + 32-bit-offset ``vgatherdps``."""

    def __init__(self, parent, base, elem, offsets, name=""):
        super().__init__(parent, ir.VectorType(ir.PointerType(), offsets.type.count), "getelementptr",
                         [base, offsets], name=name)
        self.elem = elem

    def descr(self, buf):
        base, offsets = self.operands
        buf.append(f"getelementptr inbounds {self.elem}, {base.type} {base.get_reference()}, "
                   f"{offsets.type} {offsets.get_reference()}\n")


def _i32s(values) -> ir.Constant:
    """A constant ``<len x i32>`` vector."""
    return ir.Constant(ir.VectorType(_I32, len(values)), list(values))


def _as_vec_ptr(builder, ptr, vty):
    return builder.bitcast(ptr, vty.as_pointer())


def _ints(*tys) -> bool:
    return all(isinstance(t, types.Integer) for t in tys)


def _int64(context, builder, value, ty):
    """A numba integer argument as an LLVM i64."""
    return context.cast(builder, value, ty, types.int64)


def _c64(v: int) -> ir.Constant:
    return ir.Constant(_I64, v)


def _declare(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


@functools.lru_cache(maxsize=None)
def half_is_native() -> bool:
    """Whether numba's target converts float16 to float32 in hardware (x86 F16C, AArch64).

    Without it (``NUMBA_CPU_NAME=generic``, or any x86 target below AVX) LLVM lowers
    ``fpext half`` to a call of compiler-rt's ``__extendhfsf2``, a symbol numba's JIT cannot
    resolve: the process dies while finalising the kernel. LLVM is asked directly, with the
    triple, CPU and features numba compiles for.
    """
    import llvmlite.binding as llvm
    from numba.core.registry import cpu_target

    triple, cpu, features = cpu_target.target_context.codegen().magic_tuple()
    probe = llvm.parse_assembly(
        f'target triple = "{triple}"\n'
        "define float @h(i16 %x) {\n  %h = bitcast i16 %x to half\n"
        "  %f = fpext half %h to float\n  ret float %f\n}\n")
    tm = llvm.Target.from_triple(triple).create_target_machine(cpu=cpu, features=features)
    asm = tm.emit_assembly(probe)
    return not any(call in asm for call in ("__extendhfsf2", "__gnu_h2f_ieee", "call", "jmp"))


def half_bits_to_float(builder: Any, bits: Any, native: Any = None) -> Any:
    """float16 bits (an i16 or a vector of them) as float32 values.

    ``fpext half`` where the target converts in hardware; otherwise the same conversion in
    integer operations that any SIMD width vectorises (Giesen's branch-free half_to_float:
    rebias the exponent, fix up inf/NaN, renormalise subnormals with one float subtraction).
    Equal to NumPy's conversion for every bit pattern (the hardware path quiets signalling
    NaNs). ``native`` forces a path (tests); by default :func:`half_is_native` decides.
    """
    vec = isinstance(bits.type, ir.VectorType)
    n = bits.type.count if vec else None

    def ty(elem):
        return ir.VectorType(elem, n) if vec else elem

    if half_is_native() if native is None else native:
        return builder.fpext(builder.bitcast(bits, ty(ir.HalfType())), ty(_F32))

    def c(v):
        return ir.Constant(ty(_I32), [v] * n if vec else v)

    h = builder.zext(bits, ty(_I32))
    o = builder.shl(builder.and_(h, c(0x7FFF)), c(13))  # exponent and mantissa, in place
    exp = builder.and_(o, c(0x0F800000))
    o = builder.add(o, c(0x38000000))  # rebias: (127 - 15) << 23
    o = builder.select(builder.icmp_unsigned("==", exp, c(0x0F800000)), builder.add(o, c(0x38000000)), o)
    # subnormal: give it the implicit bit, then subtract 2**-14 as a float
    sub = builder.fsub(builder.bitcast(builder.add(o, c(0x00800000)), ty(_F32)), builder.bitcast(c(0x38800000), ty(_F32)))
    o = builder.select(builder.icmp_unsigned("==", exp, c(0)), builder.bitcast(sub, ty(_I32)), o)
    o = builder.or_(o, builder.shl(builder.and_(h, c(0x8000)), c(16)))
    return builder.bitcast(o, ty(_F32))


def _to_float(builder, value, elem):
    """Convert a scalar or vector of stored values to float32 lanes."""
    if elem == _F32:
        return value
    if elem == _I16:  # float16 bits
        return half_bits_to_float(builder, value)
    f32 = ir.VectorType(_F32, value.type.count) if isinstance(value.type, ir.VectorType) else _F32
    return builder.sitofp(value, f32)


def _splat(builder, value, count=16):
    vty = ir.VectorType(value.type, count)
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), _i32s([0] * count))


def _lane_mask(builder, nlanes):
    """``<16 x i1>``: lane l on when l < nlanes (an i64)."""
    iota = ir.Constant(ir.VectorType(_I32, 16), list(range(16)))
    return builder.icmp_signed("<", iota, _splat(builder, builder.trunc(nlanes, _I32)))


def _masked_load(builder, ptr, vty, mask):
    width = vty.element.width if isinstance(vty.element, ir.IntType) else 32
    suffix = "f32" if vty.element == _F32 else f"i{width}"
    fn = _declare(builder, f"llvm.masked.load.v16{suffix}.p0", vty, [ir.PointerType(), _I32, mask.type, vty])
    return builder.call(fn, [_as_vec_ptr(builder, ptr, vty), ir.Constant(_I32, 1), mask, ir.Constant(vty, None)])


def _lane_offsets(builder, cols, signed):
    """Column indices as non-negative 32-bit lane offsets (indices are below 2**31)."""
    width = cols.type.element.width
    i32v = ir.VectorType(_I32, 16)
    if width < 32:
        return builder.sext(cols, i32v) if signed else builder.zext(cols, i32v)
    if width > 32:
        cols = builder.trunc(cols, i32v)
    return builder.and_(cols, ir.Constant(i32v, [0x7FFFFFFF] * 16)) if signed or width > 32 else cols


def _gather(builder, xptr, offsets, mask):
    """``x[offsets[l]]`` for the lanes on in ``mask``, 0 elsewhere."""
    ptrs = _VectorGEP(builder.block, xptr, _F32, offsets)
    builder._insert(ptrs)  # noqa: SLF001 -- llvmlite has no public hook for a custom instruction
    fn = _declare(builder, "llvm.masked.gather.v16f32.v16p0", _V16F, [ptrs.type, _I32, mask.type, _V16F])
    return builder.call(fn, [ptrs, ir.Constant(_I32, 4), mask, ir.Constant(_V16F, None)])


def _hsum(builder, v):
    n = v.type.count
    while n > 1:
        h = n // 2
        lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h))))
        hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h, n))))
        v = builder.fadd(lo, hi)
        n = h
    return builder.extract_element(v, ir.Constant(_I32, 0))


def _data_ptr(context, builder, aryty, value, offset=None):
    ptr = context.make_array(aryty)(context, builder, value).data
    return builder.gep(ptr, [offset]) if offset is not None else ptr


@intrinsic
def expand_dot(typingctx: Any, mask: Any, moff: Any, nbytes: Any, data: Any, doff: Any,
               xp: Any) -> Any:
    """``sum_j data[doff + rank(j)] * xp[j]`` over the set bits j of ``mask[moff : moff+nbytes]``.

    ``mask`` is a 1-D uint8 array (bit j of the row is bit ``j % 8`` of byte ``j // 8``), ``data``
    holds the row's set values in column order from ``doff``, ``xp`` is float32 of length
    ``>= 8 * nbytes + 8`` and zero past the true columns. Reads no value past the row's last one.
    """
    if data.dtype not in _VALUE_TYPES or not all(a.layout == "C" for a in (mask, data, xp)):
        return None
    if not _ints(moff, nbytes, doff):
        return None
    elem, suffix = _VALUE_TYPES[data.dtype]
    sig = types.float32(mask, moff, nbytes, data, doff, xp)

    def codegen(context, builder, signature, args):
        mask_v, moff_v, nbytes_v, data_v, doff_v, xp_v = args
        moff_v, nbytes_v, doff_v = [_int64(context, builder, args[i], signature.args[i]) for i in (1, 2, 4)]
        mptr = _data_ptr(context, builder, signature.args[0], mask_v, moff_v)
        dptr = _data_ptr(context, builder, signature.args[3], data_v, doff_v)
        xptr = _data_ptr(context, builder, signature.args[5], xp_v)
        vty = ir.VectorType(elem, 16)
        mty = ir.VectorType(_I1, 16)
        expand = _declare(builder, f"llvm.masked.expandload.v16{suffix}", vty, [ir.PointerType(), mty, vty])
        ctpop = _declare(builder, "llvm.ctpop.i16", _I16, [_I16])
        fma = _declare(builder, "llvm.fmuladd.v16f32", _V16F, [_V16F, _V16F, _V16F])
        zero = ir.Constant(_V16F, None)

        def chunk(bits16, q, col, acc):
            """16 columns from ``col``: expand the next values, multiply by x, advance q."""
            passthru = ir.Constant(vty, None)
            v = builder.call(expand, [builder.gep(dptr, [q]), builder.bitcast(bits16, mty), passthru])
            xv = builder.load(builder.bitcast(builder.gep(xptr, [col]), _V16F.as_pointer()), align=4)
            acc = builder.call(fma, [_to_float(builder, v, elem), xv, acc])
            return builder.add(q, builder.zext(builder.call(ctpop, [bits16]), _I64)), acc

        fn = builder.function
        entry = builder.basic_block
        nwords = builder.lshr(nbytes_v, _c64(3))
        tail_start = builder.shl(nwords, _c64(3))
        wloop = fn.append_basic_block("bitmap.words")
        wbody = fn.append_basic_block("bitmap.words.body")
        tloop = fn.append_basic_block("bitmap.tail")
        tbody = fn.append_basic_block("bitmap.tail.body")
        done = fn.append_basic_block("bitmap.done")
        builder.branch(wloop)

        # 64 columns per step: one 8-byte mask word, four chunks, four accumulators
        builder.position_at_end(wloop)
        w = builder.phi(_I64)
        q = builder.phi(_I64)
        accs = [builder.phi(_V16F) for _ in range(4)]
        w.add_incoming(_c64(0), entry)
        q.add_incoming(_c64(0), entry)
        for a in accs:
            a.add_incoming(zero, entry)
        builder.cbranch(builder.icmp_signed("<", w, nwords), wbody, tloop)
        builder.position_at_end(wbody)
        wptr = builder.bitcast(builder.gep(mptr, [builder.shl(w, _c64(3))]), _I64.as_pointer())
        word = builder.load(wptr, align=1)
        qk = q
        new_accs = []
        for k in range(4):
            bits16 = builder.trunc(builder.lshr(word, _c64(16 * k)), _I16)
            col = builder.add(builder.shl(w, _c64(6)), _c64(16 * k))
            qk, a = chunk(bits16, qk, col, accs[k])
            new_accs.append(a)
        w.add_incoming(builder.add(w, _c64(1)), wbody)
        q.add_incoming(qk, wbody)
        for a, a2 in zip(accs, new_accs):
            a.add_incoming(a2, wbody)
        builder.branch(wloop)

        # remaining bytes one at a time (16-lane chunk with the upper 8 bits clear)
        builder.position_at_end(tloop)
        b = builder.phi(_I64)
        tq = builder.phi(_I64)
        tacc = builder.phi(_V16F)
        b.add_incoming(tail_start, wloop)
        tq.add_incoming(q, wloop)
        tacc.add_incoming(accs[0], wloop)
        builder.cbranch(builder.icmp_signed("<", b, nbytes_v), tbody, done)
        builder.position_at_end(tbody)
        bits16 = builder.zext(builder.load(builder.gep(mptr, [b])), _I16)
        tq2, tacc2 = chunk(bits16, tq, builder.shl(b, _c64(3)), tacc)
        b.add_incoming(builder.add(b, _c64(1)), tbody)
        tq.add_incoming(tq2, tbody)
        tacc.add_incoming(tacc2, tbody)
        builder.branch(tloop)

        builder.position_at_end(done)
        total = builder.fadd(builder.fadd(tacc, accs[1]), builder.fadd(accs[2], accs[3]))
        return _hsum(builder, total)

    return sig, codegen


def _axpy_typing(vals, cols, T, col0, nvec, out):
    """The signature shared by :func:`gather_axpy` and :func:`delta_axpy`, or None."""
    if vals.dtype not in _VALUE_TYPES or not isinstance(cols.dtype, types.Integer):
        return None
    if not all(a.layout == "C" for a in (vals, cols, T, out)) or T.ndim != 2 or not _ints(col0, nvec):
        return None
    return types.none(vals, cols, T, col0, nvec, out)


def _axpy_codegen(delta: bool, ranged: bool = False):
    """Code of :func:`gather_axpy` (``delta`` False: ``cols`` are column numbers) or of
    :func:`delta_axpy` (``delta`` True: ``cols`` are 8-bit gaps and the column is a running
    sum, one scalar add per term carried through the loop). ``ranged``: the arguments of
    :func:`gather_axpy_at` (whole arrays, a range of entries, a row of a 2-D output and
    whether to add to it)."""

    def codegen(context, builder, signature, args):
        sa = signature.args
        if ranged:
            vals_v, cols_v, lo_a, hi_a, T_v, _, _, out_v, orow_a, add_a = args
            t_i, c0_i, nv_i, out_i = 4, 5, 6, 7
            lo_v = _int64(context, builder, lo_a, sa[2])
            n = builder.sub(_int64(context, builder, hi_a, sa[3]), lo_v)
            vptr = _data_ptr(context, builder, sa[0], vals_v, lo_v)
            cptr = _data_ptr(context, builder, sa[1], cols_v, lo_v)
        else:
            vals_v, cols_v, T_v, _, _, out_v = args
            t_i, c0_i, nv_i, out_i = 2, 3, 4, 5
            vptr = _data_ptr(context, builder, sa[0], vals_v)
            cptr = _data_ptr(context, builder, sa[1], cols_v)
            n = context.make_array(sa[0])(context, builder, vals_v).nitems
        elem, _ = _VALUE_TYPES[sa[0].dtype]
        signed = sa[1].dtype.signed
        col0_v = _int64(context, builder, args[c0_i], sa[c0_i])
        nvec_v = _int64(context, builder, args[nv_i], sa[nv_i])
        tarr = context.make_array(sa[t_i])(context, builder, T_v)
        width = cgutils.unpack_tuple(builder, tarr.shape, 2)[1]
        tptr = builder.gep(tarr.data, [col0_v])
        if ranged:
            oarr = context.make_array(sa[out_i])(context, builder, out_v)
            owidth = cgutils.unpack_tuple(builder, oarr.shape, 2)[1]
            orow = _int64(context, builder, orow_a, sa[8])
            optr = builder.gep(oarr.data, [builder.add(builder.mul(orow, owidth), col0_v)])
            add = builder.icmp_signed("!=", _int64(context, builder, add_a, sa[9]), _c64(0))
        else:
            optr = _data_ptr(context, builder, sa[out_i], out_v, col0_v)
        v8f = ir.VectorType(_F32, 8)
        fmas = {16: _declare(builder, "llvm.fmuladd.v16f32", _V16F, [_V16F, _V16F, _V16F]),
                8: _declare(builder, "llvm.fmuladd.v8f32", v8f, [v8f, v8f, v8f])}
        fn = builder.function
        done = fn.append_basic_block("axpy.done")
        switch = builder.switch(nvec_v, done)

        def term(k, accs, widths, col):
            """One term: (new accumulators, its column)."""
            v = _to_float(builder, builder.load(builder.gep(vptr, [k])), elem)
            c = builder.load(builder.gep(cptr, [k]))
            c = builder.sext(c, _I64) if signed else builder.zext(c, _I64)
            if delta:
                c = builder.add(builder.add(col, c), _c64(1))
            row = builder.gep(tptr, [builder.mul(c, width)])
            splats = {w: _splat(builder, v, w) for w in set(widths)}
            out = []
            for q, w in enumerate(widths):
                vty = ir.VectorType(_F32, w)
                tv = builder.load(_as_vec_ptr(builder, builder.gep(row, [_c64(16 * q)]), vty), align=4)
                out.append(builder.call(fmas[w], [splats[w], tv, accs[q]]))
            return out, c

        # nvec counts 8-float units: 16-lane vectors, and an 8-lane one when it is odd
        for n8 in range(1, 9):
            widths = [16] * (n8 // 2) + [8] * (n8 % 2)
            nv = len(widths)
            zeros = [ir.Constant(ir.VectorType(_F32, w), None) for w in widths]
            case = fn.append_basic_block(f"axpy.u{n8}")
            switch.add_case(_c64(n8), case)
            builder.position_at_end(case)
            nmain = builder.and_(n, _c64(-UNROLL))
            mloop = fn.append_basic_block(f"axpy.u{n8}.main")
            mbody = fn.append_basic_block(f"axpy.u{n8}.body")
            tloop = fn.append_basic_block(f"axpy.u{n8}.tail")
            tbody = fn.append_basic_block(f"axpy.u{n8}.tail.body")
            exit_ = fn.append_basic_block(f"axpy.u{n8}.exit")
            starts = zeros
            if ranged:      # the first set of accumulators starts from the output row (add)
                starts = [builder.select(add, builder.load(_as_vec_ptr(builder, builder.gep(optr, [_c64(16 * q)]), z.type), align=4), z)
                          for q, z in enumerate(zeros)]
            builder.branch(mloop)
            builder.position_at_end(mloop)
            k = builder.phi(_I64)
            col = builder.phi(_I64)      # the last term's column (delta mode; -1 before a row)
            sets = [[builder.phi(z.type) for z in zeros] for _ in range(UNROLL)]
            k.add_incoming(_c64(0), case)
            col.add_incoming(_c64(-1), case)
            for u, acc in enumerate(sets):
                for a, z in zip(acc, starts if u == 0 else zeros):
                    a.add_incoming(z, case)
            builder.cbranch(builder.icmp_signed("<", k, nmain), mbody, tloop)
            builder.position_at_end(mbody)
            new_sets, c = [], col
            for u in range(UNROLL):
                accs, c = term(builder.add(k, _c64(u)), sets[u], widths, c)
                new_sets.append(accs)
            k.add_incoming(builder.add(k, _c64(UNROLL)), mbody)
            col.add_incoming(c, mbody)
            for acc, acc2 in zip(sets, new_sets):
                for a, a2 in zip(acc, acc2):
                    a.add_incoming(a2, mbody)
            builder.branch(mloop)
            # the last n % UNROLL terms, one at a time
            builder.position_at_end(tloop)
            kt = builder.phi(_I64)
            tcol = builder.phi(_I64)
            tacc = [builder.phi(z.type) for z in zeros]
            kt.add_incoming(nmain, mloop)
            tcol.add_incoming(col, mloop)
            for q, a in enumerate(tacc):
                a.add_incoming(sets[0][q], mloop)
            builder.cbranch(builder.icmp_signed("<", kt, n), tbody, exit_)
            builder.position_at_end(tbody)
            tacc2, tc = term(kt, tacc, widths, tcol)
            kt.add_incoming(builder.add(kt, _c64(1)), tbody)
            tcol.add_incoming(tc, tbody)
            for a, a2 in zip(tacc, tacc2):
                a.add_incoming(a2, tbody)
            builder.branch(tloop)
            builder.position_at_end(exit_)
            for q in range(nv):
                total = tacc[q]
                for u in range(1, UNROLL):
                    total = builder.fadd(total, sets[u][q])
                builder.store(total, _as_vec_ptr(builder, builder.gep(optr, [_c64(16 * q)]), total.type), align=4)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return codegen


@intrinsic
def gather_axpy(typingctx: Any, vals: Any, cols: Any, T: Any, col0: Any, nvec: Any,
                out: Any) -> Any:
    """``out[s] = sum_k vals[k] * T[cols[k], s]`` for ``s`` in ``col0 : col0 + 8*nvec`` (``nvec``
    in 1..8 units of 8 floats).

    ``T`` is the C-contiguous float32 [n, width] transposed batch, so each term is up to four
    contiguous 16-lane rows, the last one 8 lanes wide when ``nvec`` is odd (batch 8 or 24 then
    does no work on padding lanes); ``vals``/``cols`` are 1-D contiguous of equal length;
    ``out`` is a float32 row of at least ``col0 + 8*nvec`` elements. The batch columns are the
    register block: four terms per step keep 4 x (up to four) independent accumulators in flight
    (an FMA takes 4 cycles; one chain per vector would stall), and each term's weight is
    broadcast once for all of them.
    """
    sig = _axpy_typing(vals, cols, T, col0, nvec, out)
    return None if sig is None else (sig, _axpy_codegen(delta=False))


@intrinsic
def gather_axpy_at(typingctx: Any, vals: Any, cols: Any, lo: Any, hi: Any, T: Any, col0: Any,
                   nvec: Any, out: Any, orow: Any, add: Any) -> Any:
    """:func:`gather_axpy` over the entries ``lo:hi`` of whole ``vals``/``cols`` arrays into row
    ``orow`` of the 2-D ``out`` (``out[orow, col0 + s]``), added to what the row holds when
    ``add`` is nonzero. No array is sliced: a numba slice in a loop costs atomic reference
    counts, which the column-blocked product (one call per row and block of columns) would
    pay about 30,000 times a call."""
    if vals.dtype not in _VALUE_TYPES or not isinstance(cols.dtype, types.Integer):
        return None
    if not all(a.layout == "C" for a in (vals, cols, T, out)) or T.ndim != 2 or out.ndim != 2:
        return None
    if not _ints(lo, hi, col0, nvec, orow, add) or vals.ndim != 1 or cols.ndim != 1:
        return None
    sig = types.none(vals, cols, lo, hi, T, col0, nvec, out, orow, add)
    return sig, _axpy_codegen(delta=False, ranged=True)


@intrinsic
def prefetch_at(typingctx: Any, arr: Any, i: Any) -> Any:
    """Ask the caches for the line holding ``arr[i]`` of a 1-D contiguous array (a read, kept
    in every level), without waiting for it. No bounds check: a prefetch never faults, but
    callers keep ``i`` inside the array."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C") or not _ints(i):
        return None

    def codegen(context, builder, signature, args):
        ptr = _data_ptr(context, builder, signature.args[0], args[0],
                        _int64(context, builder, args[1], signature.args[1]))
        fn = _declare(builder, "llvm.prefetch.p0", ir.VoidType(),
                      [ir.PointerType(), _I32, _I32, _I32])
        builder.call(fn, [builder.bitcast(ptr, ir.PointerType()), ir.Constant(_I32, 0),
                          ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return types.none(arr, i), codegen


@intrinsic
def delta_axpy(typingctx: Any, vals: Any, deltas: Any, T: Any, col0: Any, nvec: Any,
               out: Any) -> Any:
    """:func:`gather_axpy` for one delta8 row: the column of term ``k`` is ``c_k = c_{k-1} +
    deltas[k] + 1`` from ``c_{-1} = -1`` (see :mod:`prunebench.formats.delta8`), read from the
    deltas as the loop goes, never expanded into an index array."""
    if not (isinstance(deltas, types.Array) and deltas.dtype == types.uint8):
        return None
    sig = _axpy_typing(vals, deltas, T, col0, nvec, out)
    return None if sig is None else (sig, _axpy_codegen(delta=True))


@intrinsic
def delta_dot(typingctx: Any, deltas: Any, data: Any, lo: Any, hi: Any, x: Any) -> Any:
    """``sum_k data[k] * x[c_k]`` over the stored entries ``lo <= k < hi`` of one delta8 row,
    where ``c_k = c_{k-1} + deltas[k] + 1`` from ``c_{lo-1} = -1``.

    Sixteen entries per chunk: the 16 deltas are widened to 16-bit lanes, plus one, and summed
    into their offsets in registers (a log-step prefix sum of 256-bit shifts and adds), then
    widened to i32 on top of the previous chunk's last column and x is gathered at those
    columns. The chunk's prefix sum does not depend on the previous chunk, so the
    loop-carried chain is one add. The last partial chunk uses masked loads; nothing past ``hi`` is read.
    ``deltas`` is uint8, ``data`` float32/int8/float16 bits, ``x`` float32, all 1-D C-contiguous;
    the columns must lie inside ``x`` (the format's ``check()`` guarantees it).
    """
    if not (isinstance(deltas, types.Array) and deltas.dtype == types.uint8) or data.dtype not in _VALUE_TYPES:
        return None
    if not all(a.layout == "C" for a in (deltas, data, x)) or x.dtype != types.float32 or not _ints(lo, hi):
        return None
    elem, _ = _VALUE_TYPES[data.dtype]
    sig = types.float32(deltas, data, lo, hi, x)

    def codegen(context, builder, signature, args):
        lo_v = _int64(context, builder, args[2], signature.args[2])
        hi_v = _int64(context, builder, args[3], signature.args[3])
        dptr = _data_ptr(context, builder, signature.args[0], args[0], lo_v)
        vptr = _data_ptr(context, builder, signature.args[1], args[1], lo_v)
        xptr = _data_ptr(context, builder, signature.args[4], args[4])
        n = builder.sub(hi_v, lo_v)
        i32v = ir.VectorType(_I32, 16)
        d8 = ir.VectorType(ir.IntType(8), 16)
        vty = ir.VectorType(elem, 16)
        fma = _declare(builder, "llvm.fmuladd.v16f32", _V16F, [_V16F, _V16F, _V16F])
        ones = ir.Constant(ir.VectorType(_I1, 16), [1] * 16)
        i16v = ir.VectorType(_I16, 16)
        zeros_w = ir.Constant(i16v, None)

        def columns(k, base, mask):
            """Columns of entries k..k+15 (``mask``: the lanes that exist, None = all) and the
            next chunk's base."""
            if mask is None:
                d = builder.load(_as_vec_ptr(builder, builder.gep(dptr, [k]), d8), align=1)
            else:
                d = _masked_load(builder, builder.gep(dptr, [k]), d8, mask)
            # prefix sum in 16-bit lanes (a chunk sums to at most 16 * 256): shifts inside each
            # half of 8 lanes (in-lane byte shifts), then the low half's total into the high half
            w = builder.add(builder.zext(d, i16v), ir.Constant(i16v, [1] * 16))
            for step in (1, 2, 4):
                shifted = builder.shuffle_vector(w, zeros_w, _i32s([i - step if i % 8 >= step else 16 for i in range(16)]))
                w = builder.add(w, shifted)
            w = builder.add(w, builder.shuffle_vector(w, zeros_w, _i32s([16] * 8 + [7] * 8)))
            c = builder.zext(w, i32v)
            # the next chunk's base (a scalar): one add on the loop-carried chain
            total = builder.zext(builder.extract_element(w, ir.Constant(_I32, 15)), _I32)
            return builder.add(c, _splat(builder, base)), builder.add(base, total)

        def accumulate(k, cols, acc, mask):
            if mask is None:
                v = builder.load(_as_vec_ptr(builder, builder.gep(vptr, [k]), vty), align=1)
            else:
                v = _masked_load(builder, builder.gep(vptr, [k]), vty, mask)
            xs = _gather(builder, xptr, cols, ones if mask is None else mask)
            return builder.call(fma, [_to_float(builder, v, elem), xs, acc])

        fn = builder.function
        entry = builder.basic_block
        first = fn.append_basic_block("delta.first")
        mloop = fn.append_basic_block("delta.main")
        mbody = fn.append_basic_block("delta.body")
        drain = fn.append_basic_block("delta.drain")
        tloop = fn.append_basic_block("delta.tail")
        tbody = fn.append_basic_block("delta.tail.body")
        done = fn.append_basic_block("delta.done")
        zero = ir.Constant(_V16F, None)
        start = ir.Constant(_I32, -1)
        builder.cbranch(builder.icmp_signed(">=", n, _c64(32)), first, tloop)

        # 32 entries per step, two accumulators, software-pipelined: a step gathers at the
        # columns the previous step computed and computes the next step's (the gather then
        # never waits for the prefix sum's latency)
        builder.position_at_end(first)
        c0_first, b_first = columns(_c64(0), start, None)
        c1_first, b_first = columns(_c64(16), b_first, None)
        builder.branch(mloop)
        builder.position_at_end(mloop)
        k = builder.phi(_I64)
        c0 = builder.phi(i32v)
        c1 = builder.phi(i32v)
        base = builder.phi(_I32)
        a0 = builder.phi(_V16F)
        a1 = builder.phi(_V16F)
        k.add_incoming(_c64(0), first)
        c0.add_incoming(c0_first, first)
        c1.add_incoming(c1_first, first)
        base.add_incoming(b_first, first)
        a0.add_incoming(zero, first)
        a1.add_incoming(zero, first)
        builder.cbranch(builder.icmp_signed("<=", builder.add(k, _c64(64)), n), mbody, drain)
        builder.position_at_end(mbody)
        n0 = accumulate(k, c0, a0, None)
        n1 = accumulate(builder.add(k, _c64(16)), c1, a1, None)
        nc0, nb = columns(builder.add(k, _c64(32)), base, None)
        nc1, nb = columns(builder.add(k, _c64(48)), nb, None)
        k.add_incoming(builder.add(k, _c64(32)), mbody)
        c0.add_incoming(nc0, mbody)
        c1.add_incoming(nc1, mbody)
        base.add_incoming(nb, mbody)
        a0.add_incoming(n0, mbody)
        a1.add_incoming(n1, mbody)
        builder.branch(mloop)
        builder.position_at_end(drain)  # the step whose columns are computed
        d0 = accumulate(k, c0, a0, None)
        d1 = accumulate(builder.add(k, _c64(16)), c1, a1, None)
        kd = builder.add(k, _c64(32))
        builder.branch(tloop)

        # the last n % 32 entries (all of them in a row shorter than 32), 16 at a time with masks
        builder.position_at_end(tloop)
        kt = builder.phi(_I64)
        tbase = builder.phi(_I32)
        tacc = builder.phi(_V16F)
        tacc1 = builder.phi(_V16F)
        kt.add_incoming(kd, drain)
        tbase.add_incoming(base, drain)
        tacc.add_incoming(d0, drain)
        tacc1.add_incoming(d1, drain)
        kt.add_incoming(_c64(0), entry)
        tbase.add_incoming(start, entry)
        tacc.add_incoming(zero, entry)
        tacc1.add_incoming(zero, entry)
        builder.cbranch(builder.icmp_signed("<", kt, n), tbody, done)
        builder.position_at_end(tbody)
        mask = _lane_mask(builder, builder.sub(n, kt))
        tcols, tb2 = columns(kt, tbase, mask)
        tacc2 = accumulate(kt, tcols, tacc, mask)
        kt.add_incoming(builder.add(kt, _c64(16)), tbody)
        tbase.add_incoming(tb2, tbody)
        tacc.add_incoming(tacc2, tbody)
        tacc1.add_incoming(tacc1, tbody)
        builder.branch(tloop)

        builder.position_at_end(done)
        return _hsum(builder, builder.fadd(tacc, tacc1))

    return sig, codegen


@intrinsic
def load_le64(typingctx: Any, arr: Any, offset: Any) -> Any:
    """The 8 bytes ``arr[offset : offset+8]`` of a 1-D uint8 array as a little-endian uint64."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.layout == "C" and _ints(offset)):
        return None
    sig = types.uint64(arr, offset)

    def codegen(context, builder, signature, args):
        offset_v = context.cast(builder, args[1], signature.args[1], types.int64)
        ptr = _data_ptr(context, builder, signature.args[0], args[0], offset_v)
        return builder.load(builder.bitcast(ptr, _I64.as_pointer()), align=1)

    return sig, codegen


@intrinsic
def trailing_zeros(typingctx: Any, word: Any) -> Any:
    """Index of the lowest set bit of a uint64 (64 when it is zero)."""
    if word != types.uint64:
        return None
    sig = types.int64(word)

    def codegen(context, builder, signature, args):
        cttz = _declare(builder, "llvm.cttz.i64", _I64, [_I64, _I1])
        return builder.call(cttz, [args[0], ir.Constant(_I1, 0)])

    return sig, codegen



@intrinsic
def unpack_fields16(typingctx: Any, packed: Any, byte_offset: Any, bits: Any, out: Any,
                    out_offset: Any) -> Any:
    """``out[out_offset + t] = (word >> (t * bits)) & (2**bits - 1)`` for t < 16, where ``word``
    is the little-endian uint64 at ``packed[byte_offset:]`` (8 bytes must be readable).

    Sixteen ``bits``-wide fields span ``2 * bits <= 8`` bytes; ``out`` is a 1-D int32 array.
    """
    if not (isinstance(packed, types.Array) and packed.dtype == types.uint8 and packed.layout == "C"):
        return None
    if not (isinstance(out, types.Array) and out.dtype == types.int32 and out.layout == "C"):
        return None
    if not _ints(byte_offset, bits, out_offset):
        return None
    sig = types.none(packed, byte_offset, bits, out, out_offset)

    def codegen(context, builder, signature, args):
        packed_v, off_v, bits_v, out_v, ooff_v = args
        off_v = context.cast(builder, off_v, signature.args[1], types.int64)
        ooff_v = context.cast(builder, ooff_v, signature.args[4], types.int64)
        v16 = ir.VectorType(_I64, 16)
        src = _data_ptr(context, builder, signature.args[0], packed_v, off_v)
        word = builder.load(builder.bitcast(src, _I64.as_pointer()), align=1)
        nbits = context.cast(builder, bits_v, signature.args[2], types.int64)

        shifts = builder.mul(ir.Constant(v16, list(range(16))), _splat(builder, nbits))
        fmask = builder.sub(builder.shl(_c64(1), nbits), _c64(1))
        fields = builder.and_(builder.lshr(_splat(builder, word), shifts), _splat(builder, fmask))
        dst = _data_ptr(context, builder, signature.args[3], out_v, ooff_v)
        i32v = ir.VectorType(_I32, 16)
        builder.store(builder.trunc(fields, i32v), _as_vec_ptr(builder, dst, i32v), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def ell_rows(typingctx: Any, vals: Any, cols: Any, start: Any, stride: Any, width: Any,
             nlanes: Any, x: Any, out: Any) -> Any:
    """``out[l] = sum_{k < width} vals[o] * x[cols[o]]`` with ``o = start + k*stride + l`` for the
    ``nlanes <= 64`` rows ``l`` of one sliced-ELL slice (``stride`` = the slice's height).

    Up to four 16-lane accumulators walk the slice once, column by column, so the slice streams
    from memory in order; masked loads keep lanes ``>= nlanes`` from reading past it. ``out`` is
    float32 with at least ``16 * ceil(nlanes / 16)`` elements.
    """
    if vals.dtype not in _VALUE_TYPES or not isinstance(cols.dtype, types.Integer):
        return None
    if not all(a.layout == "C" for a in (vals, cols, x, out)) or x.dtype != types.float32:
        return None
    if not _ints(start, stride, width, nlanes):
        return None
    elem, _ = _VALUE_TYPES[vals.dtype]
    signed = cols.dtype.signed
    sig = types.none(vals, cols, start, stride, width, nlanes, x, out)

    def codegen(context, builder, signature, args):
        start_v, stride_v, width_v, nl_v = [
            context.cast(builder, v, t, types.int64) for v, t in zip(args[2:6], signature.args[2:6])
        ]
        vptr = _data_ptr(context, builder, signature.args[0], args[0])
        cptr = _data_ptr(context, builder, signature.args[1], args[1])
        xptr = _data_ptr(context, builder, signature.args[6], args[6])
        optr = _data_ptr(context, builder, signature.args[7], args[7])
        vty = ir.VectorType(elem, 16)
        cty = ir.VectorType(ir.IntType(signature.args[1].dtype.bitwidth), 16)
        fma = _declare(builder, "llvm.fmuladd.v16f32", _V16F, [_V16F, _V16F, _V16F])
        fn = builder.function
        done = fn.append_basic_block("ell.done")
        nchunks = builder.lshr(builder.add(nl_v, _c64(15)), _c64(4))
        switch = builder.switch(nchunks, done)
        for nq in range(1, 5):
            case = fn.append_basic_block(f"ell.q{nq}")
            switch.add_case(_c64(nq), case)
            builder.position_at_end(case)
            masks = [_lane_mask(builder, builder.sub(nl_v, _c64(16 * q))) for q in range(nq)]
            loop = fn.append_basic_block(f"ell.q{nq}.loop")
            body = fn.append_basic_block(f"ell.q{nq}.body")
            exit_ = fn.append_basic_block(f"ell.q{nq}.exit")
            builder.branch(loop)
            builder.position_at_end(loop)
            k = builder.phi(_I64)
            off = builder.phi(_I64)
            accs = [builder.phi(_V16F) for _ in range(nq)]
            k.add_incoming(_c64(0), case)
            off.add_incoming(start_v, case)
            for a in accs:
                a.add_incoming(ir.Constant(_V16F, None), case)
            builder.cbranch(builder.icmp_signed("<", k, width_v), body, exit_)
            builder.position_at_end(body)
            new = []
            for q in range(nq):
                o = builder.add(off, _c64(16 * q))
                v = _masked_load(builder, builder.gep(vptr, [o]), vty, masks[q])
                c = _masked_load(builder, builder.gep(cptr, [o]), cty, masks[q])
                xs = _gather(builder, xptr, _lane_offsets(builder, c, signed), masks[q])
                new.append(builder.call(fma, [_to_float(builder, v, elem), xs, accs[q]]))
            k.add_incoming(builder.add(k, _c64(1)), body)
            off.add_incoming(builder.add(off, stride_v), body)
            for a, a2 in zip(accs, new):
                a.add_incoming(a2, body)
            builder.branch(loop)
            builder.position_at_end(exit_)
            for q in range(nq):
                dst = builder.bitcast(builder.gep(optr, [_c64(16 * q)]), _V16F.as_pointer())
                builder.store(accs[q], dst, align=4)
            builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def bsr_block_row(typingctx: Any, flat: Any, indices: Any, k0: Any, k1: Any, C: Any, RC: Any,
                  colpat: Any, xp: Any, out: Any) -> Any:
    """Lane sums of one BSR block row: ``out[l] = sum`` of the block values in lane ``l`` times
    their ``xp`` entries; the caller adds the lanes of each output row.

    ``flat`` holds the blocks' values (block k at ``k*RC``, row-major r x c inside), ``xp`` is x
    zero-padded to whole blocks, ``colpat`` (int32, 64) the in-block column of each lane.
    Two layouts, chosen by the block size ``RC = r*c``:

    * ``RC`` in 16, 32, 48, 64: lane ``l`` of chunk ``q`` is block element ``16q + l`` (``out``
      gets ``RC`` lanes); each block is one to four full vectors.
    * ``RC`` in 1, 2, 4, 8: one vector holds ``16 / RC`` consecutive blocks and lane ``l`` is
      element ``l % RC`` (``out`` gets 16 lanes); their block columns are spread over the lanes
      with a constant shuffle.

    Other block sizes return without writing (the caller has a scalar path).
    """
    if flat.dtype not in _VALUE_TYPES or not isinstance(indices.dtype, types.Integer):
        return None
    if not all(a.layout == "C" for a in (flat, indices, colpat, xp, out)) or not _ints(k0, k1, C, RC):
        return None
    elem, _ = _VALUE_TYPES[flat.dtype]
    signed = indices.dtype.signed
    sig = types.none(flat, indices, k0, k1, C, RC, colpat, xp, out)

    def codegen(context, builder, signature, args):
        k0_v, k1_v, c_v, rc_v = [_int64(context, builder, v, t) for v, t in zip(args[2:6], signature.args[2:6])]
        fptr = _data_ptr(context, builder, signature.args[0], args[0])
        iptr = _data_ptr(context, builder, signature.args[1], args[1])
        pptr = _data_ptr(context, builder, signature.args[6], args[6])
        xptr = _data_ptr(context, builder, signature.args[7], args[7])
        optr = _data_ptr(context, builder, signature.args[8], args[8])
        ity = ir.IntType(signature.args[1].dtype.bitwidth)
        vty = ir.VectorType(elem, 16)
        i32v = ir.VectorType(_I32, 16)
        fma = _declare(builder, "llvm.fmuladd.v16f32", _V16F, [_V16F, _V16F, _V16F])
        c32 = _splat(builder, builder.trunc(c_v, _I32))
        fn = builder.function
        done = fn.append_basic_block("bsr.done")
        switch = builder.switch(rc_v, done)

        def block_col(k):
            """indices[k] * C as i32 (block columns are below 2**31 / C)."""
            v = builder.load(builder.gep(iptr, [k]))
            if ity.width > 32:
                v = builder.trunc(v, _I32)
            elif ity.width < 32:
                v = builder.sext(v, _I32) if signed else builder.zext(v, _I32)
            return builder.mul(v, builder.trunc(c_v, _I32))

        def loop(tag, entry_block, start, stop, step, nacc, body_fn):
            """for k in range(start, stop, step) with nacc vector accumulators; returns them."""
            head = fn.append_basic_block(f"bsr.{tag}.loop")
            body = fn.append_basic_block(f"bsr.{tag}.body")
            exit_ = fn.append_basic_block(f"bsr.{tag}.exit")
            builder.branch(head)
            builder.position_at_end(head)
            k = builder.phi(_I64)
            accs = [builder.phi(_V16F) for _ in range(nacc)]
            k.add_incoming(start, entry_block)
            for a in accs:
                a.add_incoming(ir.Constant(_V16F, None), entry_block)
            builder.cbranch(builder.icmp_signed("<", k, stop), body, exit_)
            builder.position_at_end(body)
            new = body_fn(k, accs)
            k.add_incoming(builder.add(k, _c64(step)), builder.block)
            for a, a2 in zip(accs, new):
                a.add_incoming(a2, builder.block)
            builder.branch(head)
            builder.position_at_end(exit_)
            return accs

        def store(accs):
            for q, a in enumerate(accs):
                builder.store(a, builder.bitcast(builder.gep(optr, [_c64(16 * q)]), _V16F.as_pointer()), align=4)
            builder.branch(done)

        # whole vectors per block; when c is 4 or 8 the block's x slice is one short load
        # tiled across the lanes (lane l of every chunk is column l % c) instead of a gather
        for nq in (1, 2, 3, 4):
            case = fn.append_basic_block(f"bsr.rc{16 * nq}")
            switch.add_case(_c64(16 * nq), case)
            builder.position_at_end(case)
            by_c = builder.switch(c_v, None)
            for cc in (4, 8, 0):
                sub = fn.append_basic_block(f"bsr.rc{16 * nq}.c{cc}")
                if cc:
                    by_c.add_case(_c64(cc), sub)
                else:
                    by_c.default = sub
                builder.position_at_end(sub)
                pats = [builder.load(_as_vec_ptr(builder, builder.gep(pptr, [_c64(16 * q)]), i32v), align=4)
                        for q in range(nq)]

                def body(k, accs, nq=nq, pats=pats, cc=cc):
                    base = builder.mul(k, _c64(16 * nq))
                    col0 = block_col(k)
                    if cc:
                        short = ir.VectorType(_F32, cc)
                        xsrc = builder.bitcast(builder.gep(xptr, [builder.zext(col0, _I64)]), short.as_pointer())
                        xv = builder.load(xsrc, align=4)
                        xs = builder.shuffle_vector(xv, ir.Constant(short, ir.Undefined),
                                                    ir.Constant(i32v, [lane % cc for lane in range(16)]))
                    else:
                        cols = _splat(builder, col0)
                    out = []
                    for q in range(nq):
                        vp = _as_vec_ptr(builder, builder.gep(fptr, [builder.add(base, _c64(16 * q))]), vty)
                        v = _to_float(builder, builder.load(vp, align=1), elem)
                        if not cc:
                            xs = _gather(builder, xptr, builder.add(cols, pats[q]),
                                         ir.Constant(ir.VectorType(_I1, 16), [1] * 16))
                        out.append(builder.call(fma, [v, xs, accs[q]]))
                    return out

                store(loop(f"rc{16 * nq}c{cc}", sub, k0_v, k1_v, 1, nq, body))

        # several blocks per vector: full steps unmasked, two accumulators; then one masked step
        for rc in (1, 2, 4, 8):
            g = 16 // rc
            case = fn.append_basic_block(f"bsr.rc{rc}")
            switch.add_case(_c64(rc), case)
            builder.position_at_end(case)
            pat = builder.load(builder.bitcast(pptr, i32v.as_pointer()), align=4)
            spread = ir.Constant(i32v, [lane // rc for lane in range(16)])

            def step(k, acc, bmask, vmask, rc=rc, pat=pat, spread=spread):
                """16 lanes = 16/rc blocks from block k (masked: the last, partial step)."""
                ity16 = ir.VectorType(ity, 16)
                iaddr = builder.gep(iptr, [k])
                faddr = builder.gep(fptr, [builder.mul(k, _c64(rc))])
                idx = _masked_load(builder, iaddr, ity16, bmask)
                v = _masked_load(builder, faddr, vty, vmask)
                cols = builder.shuffle_vector(builder.mul(_lane_offsets(builder, idx, signed), c32),
                                              ir.Constant(i32v, ir.Undefined), spread)
                xs = _gather(builder, xptr, builder.add(cols, pat), vmask)
                return builder.call(fma, [_to_float(builder, v, elem), xs, acc])

            def full_step(k, acc, rc=rc, g=g, cc=None):
                """A whole step without a gather: each block's x slice is one short load, and
                shuffles lay the slices out as the lanes need them (c is known per case)."""
                v = builder.load(_as_vec_ptr(builder, builder.gep(fptr, [builder.mul(k, _c64(rc))]), vty), align=1)
                parts = []
                for m in range(g):
                    col0 = builder.zext(block_col(builder.add(k, _c64(m))), _I64)
                    src = builder.gep(xptr, [col0])
                    if cc == 1:
                        one = ir.VectorType(_F32, 1)
                        scalar = builder.load(src, align=4)
                        parts.append(builder.insert_element(ir.Constant(one, ir.Undefined), scalar, ir.Constant(_I32, 0)))
                    else:
                        parts.append(builder.load(_as_vec_ptr(builder, src, ir.VectorType(_F32, cc)), align=4))
                while len(parts) > 1:  # concatenate pairwise: g slices of c -> one vector of g*c
                    n = parts[0].type.count
                    parts = [builder.shuffle_vector(parts[i], parts[i + 1], _i32s(range(2 * n)))
                             for i in range(0, len(parts), 2)]
                lanes = [(lane // rc) * cc + (lane % rc) % cc for lane in range(16)]
                xs = builder.shuffle_vector(parts[0], ir.Constant(parts[0].type, ir.Undefined), _i32s(lanes))
                return builder.call(fma, [_to_float(builder, v, elem), xs, acc])

            full_end = builder.sub(k1_v, _c64(2 * g - 1))  # k + 2g <= k1
            nfull = builder.sdiv(builder.add(builder.sub(full_end, k0_v), _c64(2 * g - 1)), _c64(2 * g))
            nfull = builder.select(builder.icmp_signed(">", nfull, _c64(0)), nfull, _c64(0))
            kt = builder.add(k0_v, builder.mul(nfull, _c64(2 * g)))  # where the full steps stop
            by_c = builder.switch(c_v, None)
            joined = fn.append_basic_block(f"bsr.rc{rc}.tail")
            sums = []
            for cc in sorted({d for d in (1, 2, 4, 8) if rc % d == 0}):
                sub = fn.append_basic_block(f"bsr.rc{rc}.c{cc}")
                by_c.add_case(_c64(cc), sub)
                if by_c.default is None:
                    by_c.default = sub  # unreachable: c divides r*c
                builder.position_at_end(sub)

                def body2(k, accs, g=g, cc=cc, full_step=full_step):
                    return [full_step(k, accs[0], cc=cc), full_step(builder.add(k, _c64(g)), accs[1], cc=cc)]

                a0, a1 = loop(f"rc{rc}.c{cc}.full", sub, k0_v, full_end, 2 * g, 2, body2)
                sums.append((builder.fadd(a0, a1), builder.block))
                builder.branch(joined)
            builder.position_at_end(joined)
            acc = builder.phi(_V16F)
            for value, block in sums:
                acc.add_incoming(value, block)
            tail_entry = builder.block

            def body1(k, accs, step=step):
                left = builder.sub(k1_v, k)
                block_mask = _lane_mask(builder, left)
                value_mask = _lane_mask(builder, builder.mul(left, _c64(rc)))
                return [step(k, accs[0], block_mask, value_mask)]

            (t,) = loop(f"rc{rc}.tail", tail_entry, kt, k1_v, g, 1, body1)
            store([builder.fadd(acc, t)])

        builder.position_at_end(done)
        return context.get_dummy_value()

    return sig, codegen


@functools.lru_cache(maxsize=None)
def permute_is_native() -> bool:
    """Whether numba's target has AVX-512F, whose ``vpermt2ps`` and ``vexpandps`` the panel
    kernel calls by their x86 names (LLVM has no generic variable permute or register
    expand). Elsewhere (``NUMBA_CPU_NAME=generic``, AArch64) the same operations are written
    lane by lane, which LLVM lowers to correct scalar code."""
    from numba.core.registry import cpu_target

    features = cpu_target.target_context.codegen().magic_tuple()[2]
    return "+avx512f" in features.split(",")


def _permute32(builder, lo, idx, hi):
    """``[lo, hi][idx[l]]`` per lane (``idx`` in 0..31): one ``vpermt2ps`` with AVX-512."""
    if permute_is_native():
        fn = _declare(builder, "llvm.x86.avx512.vpermi2var.ps.512", _V16F, [_V16F, idx.type, _V16F])
        return builder.call(fn, [lo, idx, hi])
    both = builder.shuffle_vector(lo, hi, _i32s(range(32)))
    out = ir.Constant(_V16F, None)
    for lane in range(16):
        i = builder.and_(builder.extract_element(idx, ir.Constant(_I32, lane)), ir.Constant(_I32, 31))
        out = builder.insert_element(out, builder.extract_element(both, i), ir.Constant(_I32, lane))
    return out


def _expand16(builder, packed, bits):
    """Lane ``l`` takes ``packed[popcount(bits & ((1 << l) - 1))]`` where bit ``l`` of the i16
    ``bits`` is set, else 0: one ``vexpandps`` with AVX-512."""
    if permute_is_native():
        fn = _declare(builder, "llvm.x86.avx512.mask.expand.v16f32", _V16F,
                      [_V16F, _V16F, ir.VectorType(_I1, 16)])
        return builder.call(fn, [packed, ir.Constant(_V16F, None), builder.bitcast(bits, ir.VectorType(_I1, 16))])
    ctpop = _declare(builder, "llvm.ctpop.i16", _I16, [_I16])
    out = ir.Constant(_V16F, None)
    for lane in range(16):
        below = builder.and_(bits, ir.Constant(_I16, (1 << lane) - 1))
        pos = builder.and_(builder.zext(builder.call(ctpop, [below]), _I32), ir.Constant(_I32, 15))
        on = builder.icmp_unsigned("!=", builder.and_(bits, ir.Constant(_I16, 1 << lane)), ir.Constant(_I16, 0))
        val = builder.select(on, builder.extract_element(packed, pos), ir.Constant(_F32, 0.0))
        out = builder.insert_element(out, val, ir.Constant(_I32, lane))
    return out


#: how far ahead :func:`panel_group` prefetches the values (the offsets a quarter and the chunk
#: words a 32nd of it: the streams advance 4 and 1 bytes per fp32 entry, 4 per chunk)
PANEL_PREFETCH_BYTES = 2048


@intrinsic
def panel_group(typingctx, chunks, h0, h1, offsets, data, v0, xp, out):
    """The 16 row sums of one panel row group: ``out[l] = sum`` over chunks ``h0 <= h < h1`` of
    the chunk's entry in lane ``l`` times its input (see :mod:`prunebench.formats.panel`).

    Per chunk: the panel's 32 inputs as two vectors (``xp`` holds the inputs padded to a
    multiple of 32), the chunk's offsets and values by a masked load of ``popcount(mask)``
    lanes (never past the arrays), one permute selecting each entry's input, one multiply and
    one expand of the products into their rows' lanes. ``out`` is float32 with 16 elements.
    """
    return _panel_group(chunks, h0, h1, offsets, data, v0, xp, out, masked=True)


@intrinsic
def panel_group_whole(typingctx, chunks, h0, h1, offsets, data, v0, xp, out):
    """:func:`panel_group` with plain 16-lane loads of the offsets and values: it reads up to 15
    entries past the group's last chunk, so the caller runs it only where ``offsets`` and
    ``data`` hold 15 more entries than the group's (every group but the last few). The expand
    ignores the lanes past each chunk's count. Per chunk it saves building the load mask and
    lets the value load fold into the multiply (4096x4096 at 90%, 1 thread, warm: see
    :mod:`prunebench.kernels.panel`)."""
    return _panel_group(chunks, h0, h1, offsets, data, v0, xp, out, masked=False)


def _panel_group(chunks, h0, h1, offsets, data, v0, xp, out, masked):
    if data.dtype not in _VALUE_TYPES or chunks.dtype != types.uint32 or offsets.dtype != types.uint8:
        return None
    if not all(a.layout == "C" for a in (chunks, offsets, data, xp, out)) or xp.dtype != types.float32:
        return None
    if not _ints(h0, h1, v0):
        return None
    elem, _ = _VALUE_TYPES[data.dtype]
    sig = types.none(chunks, h0, h1, offsets, data, v0, xp, out)

    def codegen(context, builder, signature, args):
        h0_v, h1_v, v0_v = [context.cast(builder, args[i], signature.args[i], types.int64) for i in (1, 2, 5)]
        cptr = _data_ptr(context, builder, signature.args[0], args[0])
        optr = _data_ptr(context, builder, signature.args[3], args[3])
        dptr = _data_ptr(context, builder, signature.args[4], args[4])
        xptr = _data_ptr(context, builder, signature.args[6], args[6])
        outp = _data_ptr(context, builder, signature.args[7], args[7])
        ctpop = _declare(builder, "llvm.ctpop.i16", _I16, [_I16])

        prefetch = _declare(builder, "llvm.prefetch.p0", ir.VoidType(), [ir.PointerType(), _I32, _I32, _I32])
        ahead_values = _c64(PANEL_PREFETCH_BYTES // (elem.width // 8 if isinstance(elem, ir.IntType) else 4))

        def fetch(ptr):
            builder.call(prefetch, [builder.bitcast(ptr, ir.PointerType()), ir.Constant(_I32, 0),
                                    ir.Constant(_I32, 3), ir.Constant(_I32, 1)])

        def chunk(h, v):
            """(the chunk's 16 lane products, its entry count)"""
            # the next chunks' addresses depend on this one's mask: without software prefetch a
            # cold stream waits on each miss in turn (C++ experiment: 0.87 -> 0.67 ms, 1 thread)
            fetch(builder.gep(dptr, [builder.add(v, ahead_values)]))
            fetch(builder.gep(optr, [builder.add(v, _c64(PANEL_PREFETCH_BYTES // 4))]))
            fetch(builder.gep(cptr, [builder.add(h, _c64(PANEL_PREFETCH_BYTES // 32))]))
            head = builder.load(builder.gep(cptr, [h]))
            bits = builder.trunc(head, _I16)
            n16 = builder.call(ctpop, [bits])
            base = builder.mul(builder.zext(builder.lshr(head, ir.Constant(_I32, 16)), _I64), _c64(32))
            lo = builder.load(_as_vec_ptr(builder, builder.gep(xptr, [base]), _V16F), align=4)
            hi = builder.load(_as_vec_ptr(builder, builder.gep(xptr, [builder.add(base, _c64(16))]), _V16F),
                              align=4)
            otype, vtype = ir.VectorType(ir.IntType(8), 16), ir.VectorType(elem, 16)
            if masked:
                # the first n lanes: (1 << n) - 1 as a lane mask (n = 16 wraps to all ones)
                first = builder.bitcast(builder.sub(builder.shl(ir.Constant(_I16, 1), n16), ir.Constant(_I16, 1)),
                                        ir.VectorType(_I1, 16))
                first = builder.select(builder.icmp_unsigned("==", n16, ir.Constant(_I16, 16)),
                                       ir.Constant(ir.VectorType(_I1, 16), [1] * 16), first)
                offs = _masked_load(builder, builder.gep(optr, [v]), otype, first)
                vals = _masked_load(builder, builder.gep(dptr, [v]), vtype, first)
            else:
                offs = builder.load(_as_vec_ptr(builder, builder.gep(optr, [v]), otype), align=1)
                vals = builder.load(_as_vec_ptr(builder, builder.gep(dptr, [v]), vtype), align=1)
            xs = _permute32(builder, lo, builder.zext(offs, ir.VectorType(_I32, 16)), hi)
            return _expand16(builder, builder.fmul(xs, _to_float(builder, vals, elem)), bits), \
                builder.zext(n16, _I64)

        fn = builder.function
        entry = builder.block
        # two chunks per step into two accumulators (the adds of one chain overlap the other's)
        loop = fn.append_basic_block("panel.loop")
        body = fn.append_basic_block("panel.body")
        tail = fn.append_basic_block("panel.tail")
        last = fn.append_basic_block("panel.last")
        exit_ = fn.append_basic_block("panel.exit")
        builder.branch(loop)
        builder.position_at_end(loop)
        h = builder.phi(_I64)
        v = builder.phi(_I64)
        accs = [builder.phi(_V16F), builder.phi(_V16F)]
        h.add_incoming(h0_v, entry)
        v.add_incoming(v0_v, entry)
        for a in accs:
            a.add_incoming(ir.Constant(_V16F, None), entry)
        builder.cbranch(builder.icmp_signed("<", builder.add(h, _c64(1)), h1_v), body, tail)
        builder.position_at_end(body)
        p0, n0 = chunk(h, v)
        v1 = builder.add(v, n0)
        p1, n1 = chunk(builder.add(h, _c64(1)), v1)
        h.add_incoming(builder.add(h, _c64(2)), body)
        v.add_incoming(builder.add(v1, n1), body)
        accs[0].add_incoming(builder.fadd(accs[0], p0), body)
        accs[1].add_incoming(builder.fadd(accs[1], p1), body)
        builder.branch(loop)
        builder.position_at_end(tail)
        both = builder.fadd(accs[0], accs[1])
        builder.cbranch(builder.icmp_signed("<", h, h1_v), last, exit_)
        builder.position_at_end(last)
        p_last, _ = chunk(h, v)
        with_last = builder.fadd(both, p_last)
        builder.branch(exit_)
        builder.position_at_end(exit_)
        acc = builder.phi(_V16F)
        acc.add_incoming(both, tail)
        acc.add_incoming(with_last, last)
        builder.store(acc, _as_vec_ptr(builder, outp, _V16F), align=4)
        return context.get_dummy_value()

    return sig, codegen
