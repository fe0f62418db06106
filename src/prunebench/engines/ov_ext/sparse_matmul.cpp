// prunebench's sparse product as an OpenVINO custom operation (engine `openvino`, formats csr).
//
// SparseMatMul(x, indptr, indices, data, bias) with W = CSR(indptr, indices, data) [rows, cols]:
//   mode 0 ("linear"):   x [..., cols]        -> y [..., rows],     y = x @ W.T + bias
//   mode 1 ("channels"): x [N, cols, S...]    -> y [N, rows, S...], y[n] = W @ x[n] + bias[:, None]
// (mode 1 is a 1x1 convolution on OpenVINO's planar layout). `act` fuses an activation:
// 0 none, 1 relu, 2 clamp(0, 6) (ReLU6).
//
// indptr int32 or int64; indices uint8, uint16 or int32 (the narrowest that fits, as the csr
// format stores them); data and bias float32 (bias may have 0 elements).
// Threads: OpenVINO's own (ov::parallel_nt inside the inference's TBB arena), so the sparse
// products and OpenVINO's kernels never compete for cores.
#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/core/parallel.hpp>
#include <openvino/op/op.hpp>

#include <algorithm>
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#endif
#include <cstdint>
#include <cstring>
#include <vector>

namespace prunebench {

typedef float v16 __attribute__((vector_size(64)));

static inline v16 load16(const float* p) {
    v16 v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}
static inline void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof(v)); }
static inline v16 splat(float s) { return v16{} + s; }

static inline float act1(float v, int act) {
    if (act == 1) return v > 0.f ? v : 0.f;
    if (act == 2) return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
    return v;
}
static inline v16 act16(v16 v, int act) {
    if (act == 0) return v;
    v16 z = v16{};
    v = v > z ? v : z;
    if (act == 2) {
        v16 six = splat(6.f);
        v = v < six ? v : six;
    }
    return v;
}


// Rows [r0, r1) of y = act(W @ x + bias) for one input vector. A plain function over
// restrict pointers: the same loop as a lambda capturing by reference ran 4x slower (GCC 12).
template <typename P, typename I>
static void spmv_rows(const P* __restrict indptr, const I* __restrict idx,
                      const float* __restrict data, const float* __restrict bias,
                      const float* __restrict x, float* __restrict y, int64_t r0, int64_t r1,
                      int act) {
    for (int64_t r = r0; r < r1; ++r) {
        float acc = 0.f;
        const P lo = indptr[r], hi = indptr[r + 1];
#pragma omp simd reduction(+ : acc)
        for (P k = lo; k < hi; ++k) acc += data[k] * x[idx[k]];
        y[r] = act1(acc + (bias ? bias[r] : 0.f), act);
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// Long rows with AVX-512: 16 indices widened to int32, one gather of x, two accumulators
// (a gather's latency hidden behind the other's FMA), masked tail.
template <typename I>
static inline __m512i widen16(const I* p) {
    if (sizeof(I) == 1) return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    if (sizeof(I) == 2) return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_loadu_si512(p);
}

template <typename I>
static inline __m512i widen16_masked(const I* p, __mmask16 m) {
    if (sizeof(I) == 1) return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p));
    if (sizeof(I) == 2) return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_maskz_loadu_epi32(m, p);
}

template <typename P, typename I>
static void spmv_rows_gather(const P* __restrict indptr, const I* __restrict idx,
                             const float* __restrict data, const float* __restrict bias,
                             const float* __restrict x, float* __restrict y, int64_t r0,
                             int64_t r1, int act) {
    for (int64_t r = r0; r < r1; ++r) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int64_t k = indptr[r];
        const int64_t hi = indptr[r + 1];
        for (; k + 32 <= hi; k += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(data + k),
                                 _mm512_i32gather_ps(widen16(idx + k), x, 4), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(data + k + 16),
                                 _mm512_i32gather_ps(widen16(idx + k + 16), x, 4), a1);
        }
        for (; k < hi; k += 16) {
            const int64_t left = hi - k;
            const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
            const __m512i ix = widen16_masked(idx + k, m);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, data + k),
                                 _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, ix, x, 4), a0);
        }
        y[r] = act1(_mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + (bias ? bias[r] : 0.f), act);
    }
}
#endif

// The same for short rows (a few values each): scalar, four accumulators. A vector gather and
// a horizontal sum per row cost more than the row (lee-charlstm's 4096 x 64 input matrix at
// 90%, 6 values a row: 67 us vectorized).
template <typename P, typename I>
static void spmv_rows_short(const P* __restrict indptr, const I* __restrict idx,
                            const float* __restrict data, const float* __restrict bias,
                            const float* __restrict x, float* __restrict y, int64_t r0, int64_t r1,
                            int act) {
    for (int64_t r = r0; r < r1; ++r) {
        float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
        P k = indptr[r];
        const P hi = indptr[r + 1];
        for (; k + 3 < hi; k += 4) {
            a0 += data[k] * x[idx[k]];
            a1 += data[k + 1] * x[idx[k + 1]];
            a2 += data[k + 2] * x[idx[k + 2]];
            a3 += data[k + 3] * x[idx[k + 3]];
        }
        for (; k < hi; ++k) a0 += data[k] * x[idx[k]];
        y[r] = act1((a0 + a1) + (a2 + a3) + (bias ? bias[r] : 0.f), act);
    }
}

// Row r0 .. r1 split so each of n parts holds about as many stored values (plus a row cost).
template <typename P>
static int64_t split(const P* indptr, int64_t rows, int part, int n, double row_cost = 8.0) {
    if (part <= 0) return 0;
    if (part >= n) return rows;
    const double total = double(indptr[rows] - indptr[0]) + row_cost * rows;
    const double goal = total * part / n;
    int64_t lo = 0, hi = rows;   // first row whose prefix cost reaches the goal
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (double(indptr[mid] - indptr[0]) + row_cost * mid < goal) lo = mid + 1; else hi = mid;
    }
    return lo;
}

template <typename P, typename I>
static void spmv(const P* indptr, const I* idx, const float* data, const float* bias,
                 const float* x, float* y, int64_t rows, int act) {
    const int64_t nnz = indptr[rows] - indptr[0];
    const int nthr = nnz > 16384 ? parallel_get_max_threads() : 1;
    const bool short_rows = nnz < 24 * rows;
    ov::parallel_nt(nthr, [&](int i, int n) {
        const int64_t r0 = split(indptr, rows, i, n), r1 = split(indptr, rows, i + 1, n);
        if (short_rows)
            spmv_rows_short(indptr, idx, data, bias, x, y, r0, r1, act);
        else
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
            spmv_rows_gather(indptr, idx, data, bias, x, y, r0, r1, act);
#else
            spmv_rows(indptr, idx, data, bias, x, y, r0, r1, act);
#endif
    });
}

// Column tiles of the product on a packed tile: the tile's 64 columns of every input row are
// copied next to each other first (buf[c * 64 + j]), so each stored value reads four contiguous
// vectors from L1/L2 instead of columns scattered over the whole input; one index and one value
// load feed four FMAs into four independent accumulators. (Measured on one core, 1536x384 at
// 30% and 128 columns: 32 GMAC/s with 64-column tiles, 29 with 32, 22 with 16.)

template <int64_t TILE, typename P, typename I>
static void tile_rows(const P* __restrict indptr, const I* __restrict idx,
                      const float* __restrict data, const float* __restrict bias,
                      const float* __restrict buf, int64_t in_stride, float* __restrict out,
                      int64_t rows, int64_t out_stride, int act) {
    // out[r * out_stride + j] = act(sum_k data[k] * buf[idx[k] * in_stride + j] + bias[r]),
    // j < TILE: input row c's TILE columns start at buf + c * in_stride
    if (TILE == 16) {  // one vector a row: four accumulators over the values instead
        for (int64_t r = 0; r < rows; ++r) {
            const P lo = indptr[r], hi = indptr[r + 1];
            v16 a0 = splat(bias ? bias[r] : 0.f), a1 = v16{}, a2 = v16{}, a3 = v16{};
            P k = lo;
            for (; k + 3 < hi; k += 4) {
                a0 += splat(data[k]) * load16(buf + int64_t(idx[k]) * in_stride);
                a1 += splat(data[k + 1]) * load16(buf + int64_t(idx[k + 1]) * in_stride);
                a2 += splat(data[k + 2]) * load16(buf + int64_t(idx[k + 2]) * in_stride);
                a3 += splat(data[k + 3]) * load16(buf + int64_t(idx[k + 3]) * in_stride);
            }
            for (; k < hi; ++k) a0 += splat(data[k]) * load16(buf + int64_t(idx[k]) * in_stride);
            store16(out + r * out_stride, act16((a0 + a1) + (a2 + a3), act));
        }
        return;
    }
    for (int64_t r = 0; r < rows; ++r) {
        const P lo = indptr[r], hi = indptr[r + 1];
        v16 a0 = splat(bias ? bias[r] : 0.f), a1 = a0, a2 = a0, a3 = a0;
        for (P k = lo; k < hi; ++k) {
            const v16 v = splat(data[k]);
            const float* x = buf + int64_t(idx[k]) * in_stride;
            a0 += v * load16(x);
            a1 += v * load16(x + 16);
            a2 += v * load16(x + 32);
            a3 += v * load16(x + 48);
        }
        float* o = out + r * out_stride;
        store16(o, act16(a0, act));
        store16(o + 16, act16(a1, act));
        store16(o + 32, act16(a2, act));
        store16(o + 48, act16(a3, act));
    }
}

// The column tiles of an n-column product: full TILE-wide tiles, then the rest as one partial
// TILE-wide tile when more than half of it is used, else as 16-wide tiles (a 4-column rest of
// 196 no longer costs a whole 64-wide tile).
struct Tiles {
    int64_t n, full, rest16, wide_rest;
    Tiles(int64_t n_, int64_t tile) : n(n_) {
        full = n / tile;
        const int64_t r = n - full * tile;
        wide_rest = (tile > 16 && r * 2 > tile) ? 1 : 0;
        rest16 = wide_rest ? 0 : (r + 15) / 16;
    }
    int64_t count() const { return full + wide_rest + rest16; }
};

// Y[r0:r1, p0:p0+w] = act(W[r0:r1] @ X[:, p0:p0+w] + bias) for X [cols, n] (channels first), Y
// [rows, n]. A full tile reads X in place (its rows are contiguous); a partial one is packed,
// zero-padded, first.
template <int64_t TILE, typename P, typename I>
static void left_tile(const P* indptr, const I* idx, const float* data, const float* bias,
                      const float* __restrict X, float* __restrict Y, int64_t cols, int64_t n,
                      int64_t p0, int64_t w, int64_t r0, int64_t r1, int act) {
    const P* ip = indptr + r0;
    const float* b = bias ? bias + r0 : nullptr;
    if (w == TILE) {
        tile_rows<TILE>(ip, idx, data, b, X + p0, n, Y + r0 * n + p0, r1 - r0, n, act);
        return;
    }
    thread_local std::vector<float> buf, part;
    buf.resize(size_t(cols * TILE));
    part.resize(size_t((r1 - r0) * TILE));
    for (int64_t c = 0; c < cols; ++c) {
        float* d = buf.data() + c * TILE;
        const float* s = X + c * n + p0;
        for (int64_t j = 0; j < TILE; ++j) d[j] = j < w ? s[j] : 0.f;
    }
    tile_rows<TILE>(ip, idx, data, b, buf.data(), TILE, part.data(), r1 - r0, TILE, act);
    for (int64_t r = r0; r < r1; ++r)
        for (int64_t j = 0; j < w; ++j) Y[r * n + p0 + j] = part[size_t((r - r0) * TILE + j)];
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// d[j * ld + i] = s[i * TILE + j] for a 16 x 16 block (16 rows of a tile product written
// back as 16 tokens' outputs): the standard in-register transpose, 16 loads and 16 stores.
static inline void transpose16(const float* s, int64_t s_ld, float* d, int64_t d_ld) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(s + i * s_ld);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; ++i) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(d + i * d_ld, r[i]);
}
#endif

// Tiles [t0, t1) of Y = act(X @ W.T + bias) for X [n, cols] (rows, e.g. tokens), Y [n, rows]:
// the same tile product, packing 64 input rows transposed and writing the tile back transposed,
// 16 output rows at a time (the 16 rows' tile stays in L1; a 1536-row tile would not).
template <int64_t TILE, typename P, typename I>
static void right_tiles(const P* indptr, const I* idx, const float* data, const float* bias,
                        const float* __restrict X, float* __restrict Y, int64_t rows,
                        int64_t cols, int64_t n, int64_t t0, int64_t t1, int act) {
    thread_local std::vector<float> buf, part;
    buf.resize(size_t(cols * TILE));
    part.resize(size_t(16 * TILE));
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t p0 = t * TILE, w = std::min(TILE, n - p0);
        if (w < TILE) std::fill(buf.begin(), buf.end(), 0.f);
        // transposes in 16-wide blocks, so the block being written stays in L1
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            const int64_t c1 = std::min(cols, c0 + 16);
            for (int64_t j = 0; j < w; ++j) {
                const float* s = X + (p0 + j) * cols;
                for (int64_t c = c0; c < c1; ++c) buf[size_t(c * TILE + j)] = s[c];
            }
        }
        for (int64_t r0 = 0; r0 < rows; r0 += 16) {
            const int64_t r1 = std::min(rows, r0 + 16);
            tile_rows<TILE>(indptr + r0, idx, data, bias ? bias + r0 : nullptr, buf.data(), TILE,
                            part.data(), r1 - r0, TILE, act);
            int64_t j0 = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
            if (r1 - r0 == 16)
                for (; j0 + 16 <= w; j0 += 16)
                    transpose16(part.data() + j0, TILE, Y + (p0 + j0) * rows + r0, rows);
#endif
            for (int64_t j = j0; j < w; ++j) {
                float* d = Y + (p0 + j) * rows;
                for (int64_t r = r0; r < r1; ++r) d[r] = part[size_t((r - r0) * TILE + j)];
            }
        }
    }
}

// Channels first: work items are (tile, row part). When the tiles do not divide evenly among
// the threads (a 7x7 map is one tile), each tile's rows are split among them too.
template <typename P, typename I>
static void left_tiled(const P* indptr, const I* idx, const float* data, const float* bias,
                       const float* X, float* Y, int64_t rows, int64_t cols, int64_t n, int act) {
    const int64_t TILE = n <= 16 ? 16 : 64;
    const Tiles tl(n, TILE);
    const int64_t tiles = tl.count();
    const int maxthr = parallel_get_max_threads();
    const int nthr = (indptr[rows] - indptr[0]) * n > 65536 ? maxthr : 1;
    const int64_t parts = (nthr > 1 && tiles % nthr != 0) ? nthr : 1;
    const int64_t items = tiles * parts;
    ov::parallel_nt(int(std::min<int64_t>(items, nthr)), [&](int i, int k) {
        const int64_t a = items * i / k, b = items * (i + 1) / k;
        for (int64_t it = a; it < b; ++it) {
            const int64_t t = it / parts, q = it % parts;
            const int64_t r0 = split(indptr, rows, int(q), int(parts));
            const int64_t r1 = split(indptr, rows, int(q + 1), int(parts));
            if (r0 >= r1) continue;
            if (t < tl.full + tl.wide_rest) {
                const int64_t p0 = t * TILE, w = std::min(TILE, n - p0);
                if (TILE == 64)
                    left_tile<64>(indptr, idx, data, bias, X, Y, cols, n, p0, w, r0, r1, act);
                else
                    left_tile<16>(indptr, idx, data, bias, X, Y, cols, n, p0, w, r0, r1, act);
            } else {
                const int64_t p0 = tl.full * TILE + (t - tl.full) * 16;
                const int64_t w = std::min<int64_t>(16, n - p0);
                left_tile<16>(indptr, idx, data, bias, X, Y, cols, n, p0, w, r0, r1, act);
            }
        }
    });
}

template <int64_t TILE, typename P, typename I>
static void right_tiled_as(const P* indptr, const I* idx, const float* data, const float* bias,
                           const float* X, float* Y, int64_t rows, int64_t cols, int64_t n,
                           int act) {
    const int64_t tiles = (n + TILE - 1) / TILE;
    const int nthr = (indptr[rows] - indptr[0]) * n > 65536 && tiles > 1
                         ? int(std::min<int64_t>(tiles, parallel_get_max_threads())) : 1;
    ov::parallel_nt(nthr, [&](int i, int k) {
        const int64_t t0 = tiles * i / k, t1 = tiles * (i + 1) / k;
        right_tiles<TILE>(indptr, idx, data, bias, X, Y, rows, cols, n, t0, t1, act);
    });
}

// 64-column tiles; 16 when there are at most 16 columns (a batch of 8 would waste 7/8 of a
// 64-column tile)
template <bool Columns, typename P, typename I>
static void tiled(const P* indptr, const I* idx, const float* data, const float* bias,
                  const float* X, float* Y, int64_t rows, int64_t cols, int64_t n, int act) {
    if (Columns)
        left_tiled(indptr, idx, data, bias, X, Y, rows, cols, n, act);
    else if (n <= 16)
        right_tiled_as<16>(indptr, idx, data, bias, X, Y, rows, cols, n, act);
    else
        right_tiled_as<64>(indptr, idx, data, bias, X, Y, rows, cols, n, act);
}

class SparseMatMul : public ov::op::Op {
public:
    OPENVINO_OP("SparseMatMul", "prunebench");

    SparseMatMul() = default;
    SparseMatMul(const ov::OutputVector& args, int64_t mode, int64_t act) : Op(args), m_mode(mode), m_act(act) {
        constructor_validate_and_infer_types();
    }

    void validate_and_infer_types() override {
        NODE_VALIDATION_CHECK(this, get_input_size() == 5, "SparseMatMul takes 5 inputs (x, indptr, indices, data, bias)");
        NODE_VALIDATION_CHECK(this, m_mode == 0 || m_mode == 1, "mode must be 0 (linear) or 1 (channels)");
        const auto& ps = get_input_partial_shape(1);
        ov::PartialShape out = get_input_partial_shape(0);
        if (ps.rank().is_static() && ps[0].is_static() && out.rank().is_static()) {
            const int64_t rows = ps[0].get_length() - 1;
            const size_t axis = m_mode == 0 ? out.size() - 1 : 1;
            NODE_VALIDATION_CHECK(this, out.size() > axis, "input rank too small for mode ", m_mode);
            out[axis] = rows;
        }
        set_output_type(0, ov::element::f32, out);
    }

    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override {
        return std::make_shared<SparseMatMul>(new_args, m_mode, m_act);
    }

    bool visit_attributes(ov::AttributeVisitor& visitor) override {
        visitor.on_attribute("mode", m_mode);
        visitor.on_attribute("act", m_act);
        return true;
    }

    bool has_evaluate() const override { return true; }

    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
        const auto& x = inputs[0];
        const auto& ip = inputs[1];
        const auto& ix = inputs[2];
        const int64_t rows = int64_t(ip.get_shape()[0]) - 1;
        ov::Shape shape = x.get_shape();
        const size_t axis = m_mode == 0 ? shape.size() - 1 : 1;
        const int64_t cols = int64_t(shape[axis]);
        shape[axis] = size_t(rows);
        if (outputs[0].get_shape() != shape) outputs[0].set_shape(shape);  // static: preallocated
        const float* X = x.data<const float>();
        float* Y = outputs[0].data<float>();
        const float* data = inputs[3].data<const float>();
        const float* bias = inputs[4].get_size() ? inputs[4].data<const float>() : nullptr;
        int64_t lead = 1, inner = 1;
        for (size_t i = 0; i < axis; ++i) lead *= int64_t(shape[i]);
        for (size_t i = axis + 1; i < shape.size(); ++i) inner *= int64_t(shape[i]);
        if (ip.get_element_type() == ov::element::i32)
            return dispatch_index(ip.data<const int32_t>(), ix, data, bias, X, Y, rows, cols, lead, inner);
        if (ip.get_element_type() == ov::element::i64)
            return dispatch_index(ip.data<const int64_t>(), ix, data, bias, X, Y, rows, cols, lead, inner);
        return false;
    }

private:
    template <typename P>
    bool dispatch_index(const P* indptr, const ov::Tensor& ix, const float* data, const float* bias,
                        const float* X, float* Y, int64_t rows, int64_t cols, int64_t lead, int64_t inner) const {
        switch (ix.get_element_type()) {
        case ov::element::u8:
            run(indptr, ix.data<const uint8_t>(), data, bias, X, Y, rows, cols, lead, inner);
            return true;
        case ov::element::u16:
            run(indptr, ix.data<const uint16_t>(), data, bias, X, Y, rows, cols, lead, inner);
            return true;
        case ov::element::i32:
            run(indptr, ix.data<const int32_t>(), data, bias, X, Y, rows, cols, lead, inner);
            return true;
        default:
            return false;
        }
    }

    template <typename P, typename I>
    void run(const P* indptr, const I* idx, const float* data, const float* bias, const float* X, float* Y,
             int64_t rows, int64_t cols, int64_t lead, int64_t inner) const {
        const int act = int(m_act);
        if (m_mode == 1) {  // [N, cols, S] -> [N, rows, S]
            for (int64_t n = 0; n < lead; ++n) {
                if (inner == 1)
                    spmv(indptr, idx, data, bias, X + n * cols, Y + n * rows, rows, act);
                else
                    tiled<true>(indptr, idx, data, bias, X + n * cols * inner,
                                Y + n * rows * inner, rows, cols, inner, act);
            }
            return;
        }
        if (lead == 1)
            spmv(indptr, idx, data, bias, X, Y, rows, act);
        else
            tiled<false>(indptr, idx, data, bias, X, Y, rows, cols, lead, act);
    }

    int64_t m_mode = 0;
    int64_t m_act = 0;
};


// DepthwiseConv(x, w, bias): a 3x3 depthwise convolution (padding 1, stride 1 or 2) on the
// planar NCHW layout, with `act` fused as in SparseMatMul. It exists so that the sparse 1x1
// convolutions around a depthwise one (MobileNetV2's blocks) stay in one layout: OpenVINO's
// own depthwise kernel runs blocked (nChw16c), and every SparseMatMul beside it then costs two
// layout conversions (Reorder).  x [N, C, H, W], w [C, 9] (row-major 3x3), bias [C] or empty.

// One channel, straight from the input plane: each output row starts at the bias and adds
// three input rows, each as three shifted, vectorizable products over the interior columns,
// the border columns (zero padding) apart.
static void dw_plane(const float* __restrict in, float* __restrict out, const float* __restrict w,
                     float b, int64_t H, int64_t W, int64_t stride, int act) {
    const int64_t Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    for (int64_t yo = 0; yo < Ho; ++yo) {
        float* __restrict o = out + yo * Wo;
        for (int64_t x = 0; x < Wo; ++x) o[x] = b;
        for (int64_t i = 0; i < 3; ++i) {
            const int64_t yy = yo * stride + i - 1;
            if (yy < 0 || yy >= H) continue;
            const float* __restrict r = in + yy * W;
            const float w0 = w[3 * i], w1 = w[3 * i + 1], w2 = w[3 * i + 2];
            o[0] += w1 * r[0] + (W > 1 ? w2 * r[1] : 0.f);
            if (stride == 1) {
#pragma omp simd
                for (int64_t x = 1; x < W - 1; ++x) o[x] += w0 * r[x - 1] + w1 * r[x] + w2 * r[x + 1];
                if (W > 1) o[W - 1] += w0 * r[W - 2] + w1 * r[W - 1];
            } else {
                const int64_t xe = W / 2;   // x < xe: columns 2x - 1 .. 2x + 1 all inside
#pragma omp simd
                for (int64_t x = 1; x < xe; ++x)
                    o[x] += w0 * r[2 * x - 1] + w1 * r[2 * x] + w2 * r[2 * x + 1];
                for (int64_t x = std::max<int64_t>(xe, 1); x < Wo; ++x)
                    o[x] += w0 * r[2 * x - 1] + w1 * r[2 * x] + (2 * x + 1 < W ? w2 * r[2 * x + 1] : 0.f);
            }
        }
        if (act) {
#pragma omp simd
            for (int64_t x = 0; x < Wo; ++x) o[x] = act1(o[x], act);
        }
    }
}

// Stride 1, one channel as one flat vector of H * W positions: the plane is copied between
// W + 1 zeros on each side, so the three input rows of every tap are one contiguous read at a
// fixed offset (rows above the first and below the last read zeros), and the column that wraps
// into the next row is cancelled by the masks mL (0 at x = 0) and mR (0 at x = W - 1). One loop
// over all positions, whatever the width: a 7x7 map is four vectors, not seven short rows.
static void dw_flat_core(const float* __restrict q, float* __restrict out,
                         const float* __restrict w, float b, int64_t H, int64_t W, int act,
                         const float* __restrict mL, const float* __restrict mR) {
    // q: the plane, with W + 1 zeros before it and W + 1 + 16 zeros after it
    const int64_t HW = H * W;
    const v16 w0 = splat(w[0]), w1 = splat(w[1]), w2 = splat(w[2]), w3 = splat(w[3]),
              w4 = splat(w[4]), w5 = splat(w[5]), w6 = splat(w[6]), w7 = splat(w[7]),
              w8 = splat(w[8]), vb = splat(b);
    int64_t p = 0;
    for (; p < HW; p += 16) {
        const float* c = q + p;
        const v16 mid = w1 * load16(c - W) + w4 * load16(c) + w7 * load16(c + W);
        const v16 left = w0 * load16(c - W - 1) + w3 * load16(c - 1) + w6 * load16(c + W - 1);
        const v16 right = w2 * load16(c - W + 1) + w5 * load16(c + 1) + w8 * load16(c + W + 1);
        const v16 v = act16(vb + mid + load16(mL + p) * left + load16(mR + p) * right, act);
        if (p + 16 <= HW) {
            store16(out + p, v);
        } else {
            float tail[16];
            store16(tail, v);
            std::memcpy(out + p, tail, size_t(HW - p) * sizeof(float));
        }
    }
}

static void dw_plane_flat(const float* __restrict in, float* __restrict out,
                          const float* __restrict w, float b, int64_t H, int64_t W, int act,
                          float* __restrict buf, const float* __restrict mL,
                          const float* __restrict mR) {
    const int64_t HW = H * W, off = W + 1;
    std::memset(buf, 0, size_t(off) * sizeof(float));
    std::memcpy(buf + off, in, size_t(HW) * sizeof(float));
    std::memset(buf + off + HW, 0, size_t(off + 16) * sizeof(float));   // + the last vector's tail
    dw_flat_core(buf + off, out, w, b, H, W, act, mL, mR);
}

// The column masks of the flat kernel: mL 0 at x = 0, mR 0 at x = W - 1 (+ 16: the last
// vector reads past H * W).
static void dw_masks(int64_t H, int64_t W, std::vector<float>& mL, std::vector<float>& mR) {
    mL.assign(size_t(H * W + 16), 0.f);
    mR.assign(size_t(H * W + 16), 0.f);
    for (int64_t p = 0; p < H * W; ++p) {
        mL[size_t(p)] = p % W != 0 ? 1.f : 0.f;
        mR[size_t(p)] = p % W != W - 1 ? 1.f : 0.f;
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
static inline __mmask16 first_lanes(int64_t n) {
    return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Stride 2, one channel, 16 outputs of a row at a time: the 32 input columns 2x .. 2x + 31 of
// each of the three input rows are two loads, split into even (2x) and odd (2x + 1) columns by
// two permutes; column 2x - 1 is the odd vector moved up one lane, the previous step's last
// odd column shifted in (zero padding at x = 0). Masked loads read nothing past a row's end.
static void dw_plane_s2(const float* __restrict in, float* __restrict out,
                        const float* __restrict w, float b, int64_t H, int64_t W, int act,
                        int64_t ylo = 0) {   // rows ylo .. H - 1 may be read (ylo -1: a halo row)
    const int64_t Ho = (H - 1) / 2 + 1, Wo = (W - 1) / 2 + 1;
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.f);
    for (int64_t yo = 0; yo < Ho; ++yo) {
        __m512 prev[3] = {zero, zero, zero};
        for (int64_t x0 = 0; x0 < Wo; x0 += 16) {
            __m512 acc = _mm512_set1_ps(b);
            const int64_t c0 = 2 * x0;
            const __mmask16 mA = first_lanes(W - c0), mB = first_lanes(W - c0 - 16);
            for (int i = 0; i < 3; ++i) {
                const int64_t yy = 2 * yo + i - 1;
                if (yy < ylo || yy >= H) continue;
                const float* r = in + yy * W + c0;
                const __m512 A = _mm512_maskz_loadu_ps(mA, r);
                const __m512 B = _mm512_maskz_loadu_ps(mB, r + 16);
                const __m512 E = _mm512_permutex2var_ps(A, ie, B);
                const __m512 O = _mm512_permutex2var_ps(A, io, B);
                const __m512 S = _mm512_castsi512_ps(_mm512_alignr_epi32(
                    _mm512_castps_si512(O), _mm512_castps_si512(prev[i]), 15));
                prev[i] = O;
                acc = _mm512_fmadd_ps(_mm512_set1_ps(w[3 * i]), S, acc);
                acc = _mm512_fmadd_ps(_mm512_set1_ps(w[3 * i + 1]), E, acc);
                acc = _mm512_fmadd_ps(_mm512_set1_ps(w[3 * i + 2]), O, acc);
            }
            if (act) acc = _mm512_max_ps(acc, zero);
            if (act == 2) acc = _mm512_min_ps(acc, six);
            _mm512_mask_storeu_ps(out + yo * Wo + x0, first_lanes(Wo - x0), acc);
        }
    }
}
#endif

// One output plane of a 3x3 depthwise convolution from a plane q laid out as dw_flat_core
// wants it. Stride 1: flat. Stride 2 with AVX-512: dw_plane_s2 (16 outputs of a row at a
// time). Stride 2 without it: a small map flat, then every other row and column kept (short
// rows cost more than the 4x products); a larger one row by row.
static void dw_any(const float* __restrict q, float* __restrict out, const float* __restrict w,
                   float b, int64_t H, int64_t W, int64_t stride, int act,
                   const float* mL, const float* mR, float* __restrict full) {
    if (stride == 1) {
        dw_flat_core(q, out, w, b, H, W, act, mL, mR);
        return;
    }
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    (void)full;
    dw_plane_s2(q, out, w, b, H, W, act);
#else
    if (H * W <= 1024) {
        dw_flat_core(q, full, w, b, H, W, act, mL, mR);
        const int64_t Ho = (H - 1) / 2 + 1, Wo = (W - 1) / 2 + 1;
        for (int64_t y = 0; y < Ho; ++y)
            for (int64_t x = 0; x < Wo; ++x) out[y * Wo + x] = full[2 * y * W + 2 * x];
    } else {
        dw_plane(q, out, w, b, H, W, stride, act);
    }
#endif
}

// The output of a 3x3 window (padding 1) at `stride` over x [N, C, H, W] (input 0): [N, rows,
// Ho, Wo], rows from the length of input `indptr` (rows + 1), or C when indptr < 0.
static void set_window_output(ov::Node* op, int64_t stride, int indptr, const char* name) {
    NODE_VALIDATION_CHECK(op, stride == 1 || stride == 2, "stride must be 1 or 2");
    ov::PartialShape out = op->get_input_partial_shape(0);
    if (out.rank().is_static()) {
        NODE_VALIDATION_CHECK(op, out.size() == 4, name, " takes x [N, C, H, W]");
        if (indptr >= 0) {
            const auto& ps = op->get_input_partial_shape(size_t(indptr));
            out[1] = ps.rank().is_static() && ps[0].is_static() ? ov::Dimension(ps[0].get_length() - 1)
                                                                : ov::Dimension::dynamic();
        }
        for (size_t i = 2; i < 4; ++i)
            if (out[i].is_static()) out[i] = (out[i].get_length() - 1) / stride + 1;
            else out[i] = ov::Dimension::dynamic();
    }
    op->set_output_type(0, ov::element::f32, out);
}

class DepthwiseConv : public ov::op::Op {
public:
    OPENVINO_OP("DepthwiseConv", "prunebench");

    DepthwiseConv() = default;
    DepthwiseConv(const ov::OutputVector& args, int64_t stride, int64_t act)
        : Op(args), m_stride(stride), m_act(act) {
        constructor_validate_and_infer_types();
    }

    void validate_and_infer_types() override {
        NODE_VALIDATION_CHECK(this, get_input_size() == 3, "DepthwiseConv takes 3 inputs (x, w, bias)");
        set_window_output(this, m_stride, -1, "DepthwiseConv");
    }

    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override {
        return std::make_shared<DepthwiseConv>(new_args, m_stride, m_act);
    }

    bool visit_attributes(ov::AttributeVisitor& visitor) override {
        visitor.on_attribute("stride", m_stride);
        visitor.on_attribute("act", m_act);
        return true;
    }

    bool has_evaluate() const override { return true; }

    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
        const ov::Shape in = inputs[0].get_shape();
        const int64_t N = int64_t(in[0]), C = int64_t(in[1]), H = int64_t(in[2]), W = int64_t(in[3]);
        const int64_t Ho = (H - 1) / m_stride + 1, Wo = (W - 1) / m_stride + 1;
        const ov::Shape shape{in[0], in[1], size_t(Ho), size_t(Wo)};
        if (outputs[0].get_shape() != shape) outputs[0].set_shape(shape);
        const float* X = inputs[0].data<const float>();
        const float* w = inputs[1].data<const float>();
        const float* bias = inputs[2].get_size() ? inputs[2].data<const float>() : nullptr;
        float* Y = outputs[0].data<float>();
        const int64_t planes = N * C, stride = m_stride;
        const int act = int(m_act);
        const int nthr = planes * H * W > 16384 ? parallel_get_max_threads() : 1;
        // stride 1, and stride 2 on small maps (computed at stride 1, every other row and
        // column kept: short rows cost more than the 4x products), run the flat kernel
        const bool flat = stride == 1 || H * W <= 1024;
        std::vector<float> mL, mR;   // column masks of the flat kernel
        if (flat) dw_masks(H, W, mL, mR);
        ov::parallel_nt(nthr, [&](int i, int k) {
            thread_local std::vector<float> buf, full;
            if (flat) buf.resize(size_t(H * W + 2 * (W + 1) + 16));
            if (flat && stride == 2) full.resize(size_t(H * W));
            for (int64_t pl = planes * i / k; pl < planes * (i + 1) / k; ++pl) {
                const int64_t c = pl % C;
                const float b = bias ? bias[c] : 0.f;
                if (stride == 1) {
                    dw_plane_flat(X + pl * H * W, Y + pl * H * W, w + c * 9, b, H, W, act,
                                  buf.data(), mL.data(), mR.data());
                } else {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
                    dw_plane_s2(X + pl * H * W, Y + pl * Ho * Wo, w + c * 9, b, H, W, act);
#else
                    if (flat) {
                        dw_plane_flat(X + pl * H * W, full.data(), w + c * 9, b, H, W, act,
                                      buf.data(), mL.data(), mR.data());
                        float* o = Y + pl * Ho * Wo;
                        for (int64_t y = 0; y < Ho; ++y)
                            for (int64_t x = 0; x < Wo; ++x) o[y * Wo + x] = full[size_t(2 * y * W + 2 * x)];
                    } else
                        dw_plane(X + pl * H * W, Y + pl * Ho * Wo, w + c * 9, b, H, W, stride, act);
#endif
                }
            }
        });
        return true;
    }

private:
    int64_t m_stride = 1;
    int64_t m_act = 0;
};

// ExpandDepthwise(x, indptr, indices, data, bias_e, w, bias): a sparse 1x1 convolution (the
// expansion of an inverted residual block, CSR as in SparseMatMul, activation act_e) followed
// by a 3x3 depthwise convolution (as DepthwiseConv: w [rows, 9], bias, stride, act), one
// channel at a time: the expanded plane is computed into a per-thread buffer (L1/L2) and
// convolved from there, so the expanded tensor (rows x H x W, 4.8 MB in MobileNetV2's second
// block) is never written to memory and read back.
//   x [N, cols, H, W] -> y [N, rows, Ho, Wo]

// Channel c of act(W @ X + b) over positions 0 .. HW - 1 of X, whose input channels are
// `plane` floats apart (X [cols, plane], positions from X on), into q.
template <typename P, typename I>
static void expand_row(const P* __restrict indptr, const I* __restrict idx,
                       const float* __restrict data, float b, const float* __restrict X,
                       int64_t plane, int64_t HW, int64_t c, float* __restrict q, int act) {
    const P lo = indptr[c], hi = indptr[c + 1];
    int64_t p = 0;
    for (; p + 64 <= HW; p += 64) {
        v16 a0 = splat(b), a1 = a0, a2 = a0, a3 = a0;
        for (P k = lo; k < hi; ++k) {
            const v16 v = splat(data[k]);
            const float* x = X + int64_t(idx[k]) * plane + p;
            a0 += v * load16(x);
            a1 += v * load16(x + 16);
            a2 += v * load16(x + 32);
            a3 += v * load16(x + 48);
        }
        store16(q + p, act16(a0, act));
        store16(q + p + 16, act16(a1, act));
        store16(q + p + 32, act16(a2, act));
        store16(q + p + 48, act16(a3, act));
    }
    for (; p + 16 <= HW; p += 16) {
        v16 a0 = splat(b);
        for (P k = lo; k < hi; ++k) a0 += splat(data[k]) * load16(X + int64_t(idx[k]) * plane + p);
        store16(q + p, act16(a0, act));
    }
    for (; p < HW; ++p) {
        float a = b;
        for (P k = lo; k < hi; ++k) a += data[k] * X[int64_t(idx[k]) * plane + p];
        q[p] = act1(a, act);
    }
}


#if !(defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__))
// Stride 2 without AVX-512, for a band: output row j reads buffer rows 2j .. 2j + 2.
static void dw_rows_s2_generic(const float* rows0, float* out, const float* w, float b,
                               int64_t no, int64_t W, int64_t Wo, int act) {
    for (int64_t j = 0; j < no; ++j)
        for (int64_t x = 0; x < Wo; ++x) {
            float a = b;
            for (int64_t i = 0; i < 3; ++i)
                for (int64_t t = 0; t < 3; ++t) {
                    const int64_t xx = 2 * x + t - 1;
                    if (xx >= 0 && xx < W) a += w[3 * i + t] * rows0[(2 * j + i) * W + xx];
                }
            out[j * Wo + x] = act1(a, act);
        }
}
#endif

// Channels [r0, r1) of one image X [cols, H * W]: each channel's expansion (act_e) into a
// per-thread plane padded as dw_flat_core wants it, then its depthwise convolution into
// out + c * Ho * Wo. dw_masks(H, W) in mL, mR.
template <typename P, typename I>
static void expand_dw_channels(const P* indptr, const I* idx, const float* data, const float* be,
                               const float* w, const float* bd, const float* X, float* out,
                               int64_t r0, int64_t r1, int64_t H, int64_t W, int64_t stride,
                               int act_e, int act, const float* mL, const float* mR) {
    const int64_t HW = H * W, off = W + 1, HWo = ((H - 1) / stride + 1) * ((W - 1) / stride + 1);
    thread_local std::vector<float> buf, full;
    buf.resize(size_t(HW + 2 * off + 16));
    std::memset(buf.data(), 0, size_t(off) * sizeof(float));
    std::memset(buf.data() + off + HW, 0, size_t(off + 16) * sizeof(float));
    if (stride == 2) full.resize(size_t(HW));
    float* q = buf.data() + off;
    for (int64_t c = r0; c < r1; ++c) {
        expand_row(indptr, idx, data, be ? be[c] : 0.f, X, HW, HW, c, q, act_e);
        dw_any(q, out + c * HWo, w + c * 9, bd ? bd[c] : 0.f, H, W, stride, act, mL, mR, full.data());
    }
}

class ExpandDepthwise : public ov::op::Op {
public:
    OPENVINO_OP("ExpandDepthwise", "prunebench");

    ExpandDepthwise() = default;
    ExpandDepthwise(const ov::OutputVector& args, int64_t stride, int64_t act_e, int64_t act)
        : Op(args), m_stride(stride), m_act_e(act_e), m_act(act) {
        constructor_validate_and_infer_types();
    }

    void validate_and_infer_types() override {
        NODE_VALIDATION_CHECK(this, get_input_size() == 7,
                              "ExpandDepthwise takes 7 inputs (x, indptr, indices, data, bias_e, w, bias)");
        set_window_output(this, m_stride, 1, "ExpandDepthwise");
    }

    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override {
        return std::make_shared<ExpandDepthwise>(new_args, m_stride, m_act_e, m_act);
    }

    bool visit_attributes(ov::AttributeVisitor& visitor) override {
        visitor.on_attribute("stride", m_stride);
        visitor.on_attribute("act_e", m_act_e);
        visitor.on_attribute("act", m_act);
        return true;
    }

    bool has_evaluate() const override { return true; }

    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
        const auto& ip = inputs[1];
        if (ip.get_element_type() == ov::element::i32)
            return dispatch_index(ip.data<const int32_t>(), outputs, inputs);
        if (ip.get_element_type() == ov::element::i64)
            return dispatch_index(ip.data<const int64_t>(), outputs, inputs);
        return false;
    }

private:
    template <typename P>
    bool dispatch_index(const P* indptr, ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
        const auto& ix = inputs[2];
        switch (ix.get_element_type()) {
        case ov::element::u8: run(indptr, ix.data<const uint8_t>(), outputs, inputs); return true;
        case ov::element::u16: run(indptr, ix.data<const uint16_t>(), outputs, inputs); return true;
        case ov::element::i32: run(indptr, ix.data<const int32_t>(), outputs, inputs); return true;
        default: return false;
        }
    }

    template <typename P, typename I>
    void run(const P* indptr, const I* idx, ov::TensorVector& outputs, const ov::TensorVector& inputs) const {
        const ov::Shape in = inputs[0].get_shape();
        const int64_t N = int64_t(in[0]), cols = int64_t(in[1]), H = int64_t(in[2]), W = int64_t(in[3]);
        const int64_t rows = int64_t(inputs[1].get_shape()[0]) - 1, stride = m_stride;
        const int64_t Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1, HW = H * W;
        const ov::Shape shape{in[0], size_t(rows), size_t(Ho), size_t(Wo)};
        if (outputs[0].get_shape() != shape) outputs[0].set_shape(shape);
        const float* X = inputs[0].data<const float>();
        const float* data = inputs[3].data<const float>();
        const float* be = inputs[4].get_size() ? inputs[4].data<const float>() : nullptr;
        const float* w = inputs[5].data<const float>();
        const float* bd = inputs[6].get_size() ? inputs[6].data<const float>() : nullptr;
        float* Y = outputs[0].data<float>();
        const int act_e = int(m_act_e), act = int(m_act);
        std::vector<float> mL, mR;
        dw_masks(H, W, mL, mR);
        const int nthr = N * rows * HW > 16384 ? parallel_get_max_threads() : 1;
        // a row's cost, in stored values: the depthwise convolution's 9 products per position
        // are worth about 10 stored values of the expansion
        ov::parallel_nt(nthr, [&](int i, int k) {
            const int64_t r0 = split(indptr, rows, i, k, 10.0), r1 = split(indptr, rows, i + 1, k, 10.0);
            for (int64_t n = 0; n < N && r0 < r1; ++n)
                expand_dw_channels(indptr, idx, data, be, w, bd, X + n * cols * HW,
                                   Y + n * rows * Ho * Wo, r0, r1, H, W, stride, act_e, act,
                                   mL.data(), mR.data());
        });
    }

    int64_t m_stride = 1;
    int64_t m_act_e = 0;
    int64_t m_act = 0;
};

// InvertedBlock(x, e_indptr, e_indices, e_data, e_bias, w, bias, p_indptr, p_indices, p_data,
// p_bias): an inverted residual block's three layers (without the residual add) as one
// operation: the sparse 1x1 expansion (act_e), the 3x3 depthwise convolution (stride, act)
// and the sparse 1x1 projection (act_p), CSR with int32 indptr and indices.
//   x [N, cols, H, W] -> y [N, rows_p, Ho, Wo]
// A large block (its depthwise output over 1 MB) runs in bands of output rows, one band per
// work item: each channel's expanded rows (with the rows above and below a band's edge that
// the 3x3 window reads) and its depthwise output stay in a per-thread buffer, and the
// projection reads the band's depthwise outputs of all channels from there (L2), so neither
// the expanded nor the depthwise tensor goes to memory. A small one runs channel by channel
// into a shared depthwise buffer (the expanded plane in L1), then the projection over it.
class InvertedBlock : public ov::op::Op {
public:
    OPENVINO_OP("InvertedBlock", "prunebench");

    InvertedBlock() = default;
    InvertedBlock(const ov::OutputVector& args, int64_t stride, int64_t act_e, int64_t act, int64_t act_p)
        : Op(args), m_stride(stride), m_act_e(act_e), m_act(act), m_act_p(act_p) {
        constructor_validate_and_infer_types();
    }

    void validate_and_infer_types() override {
        NODE_VALIDATION_CHECK(this, get_input_size() == 11, "InvertedBlock takes 11 inputs");
        for (size_t i : {1, 2, 7, 8})
            NODE_VALIDATION_CHECK(this, get_input_element_type(i) == ov::element::i32,
                                  "InvertedBlock takes int32 indptr and indices");
        set_window_output(this, m_stride, 7, "InvertedBlock");
    }

    std::shared_ptr<ov::Node> clone_with_new_inputs(const ov::OutputVector& new_args) const override {
        return std::make_shared<InvertedBlock>(new_args, m_stride, m_act_e, m_act, m_act_p);
    }

    bool visit_attributes(ov::AttributeVisitor& visitor) override {
        visitor.on_attribute("stride", m_stride);
        visitor.on_attribute("act_e", m_act_e);
        visitor.on_attribute("act", m_act);
        visitor.on_attribute("act_p", m_act_p);
        return true;
    }

    bool has_evaluate() const override { return true; }

    bool evaluate(ov::TensorVector& outputs, const ov::TensorVector& inputs) const override {
        const ov::Shape in = inputs[0].get_shape();
        const int64_t N = int64_t(in[0]), cols = int64_t(in[1]), H = int64_t(in[2]), W = int64_t(in[3]);
        const int64_t E = int64_t(inputs[1].get_shape()[0]) - 1;
        const int64_t rows = int64_t(inputs[7].get_shape()[0]) - 1, stride = m_stride;
        const int64_t Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1, HW = H * W, HWo = Ho * Wo;
        const ov::Shape shape{in[0], size_t(rows), size_t(Ho), size_t(Wo)};
        if (outputs[0].get_shape() != shape) outputs[0].set_shape(shape);
        const float* X = inputs[0].data<const float>();
        const int32_t* eip = inputs[1].data<const int32_t>();
        const int32_t* eix = inputs[2].data<const int32_t>();
        const float* edata = inputs[3].data<const float>();
        const float* eb = inputs[4].get_size() ? inputs[4].data<const float>() : nullptr;
        const float* w = inputs[5].data<const float>();
        const float* bd = inputs[6].get_size() ? inputs[6].data<const float>() : nullptr;
        const int32_t* pip = inputs[7].data<const int32_t>();
        const int32_t* pix = inputs[8].data<const int32_t>();
        const float* pdata = inputs[9].data<const float>();
        const float* pb = inputs[10].get_size() ? inputs[10].data<const float>() : nullptr;
        float* Y = outputs[0].data<float>();
        const int act_e = int(m_act_e), act = int(m_act), act_p = int(m_act_p);
        const int maxthr = parallel_get_max_threads();
        std::vector<float> mL, mR;
        dw_masks(H, W, mL, mR);
        if (E * HWo * 4 <= (1 << 20)) {   // small: channel by channel, then the projection
            // (a thread_local named inside the parallel region would be each worker's own)
            thread_local std::vector<float> Dv;
            Dv.resize(size_t(E * HWo));
            float* const D = Dv.data();
            for (int64_t n = 0; n < N; ++n) {
                const int nthr = E * HW > 16384 ? maxthr : 1;
                ov::parallel_nt(nthr, [&](int i, int k) {
                    const int64_t r0 = split(eip, E, i, k, 10.0), r1 = split(eip, E, i + 1, k, 10.0);
                    if (r0 < r1)
                        expand_dw_channels(eip, eix, edata, eb, w, bd, X + n * cols * HW, D, r0, r1,
                                           H, W, stride, act_e, act, mL.data(), mR.data());
                });
                left_tiled(pip, pix, pdata, pb, D, Y + n * rows * HWo, rows, E, HWo, act_p);
            }
            return true;
        }
        // large: bands of hb output rows, the band's depthwise outputs of all channels in
        // about 256 KB, at least one band per thread
        // (and a multiple of the threads: 5 bands on 2 threads would leave one idle a fifth)
        int64_t hb = std::max<int64_t>(1, std::min<int64_t>(Ho, 65536 / std::max<int64_t>(1, E * Wo)));
        int64_t nb = (Ho + hb - 1) / hb;
        nb = std::min<int64_t>(Ho, (nb + maxthr - 1) / maxthr * maxthr);
        hb = (Ho + nb - 1) / nb;
        nb = (Ho + hb - 1) / hb;
        const int64_t items = N * nb;
        ov::parallel_nt(int(std::min<int64_t>(items, maxthr)), [&](int i, int k) {
            thread_local std::vector<float> buf, D, tail;
            const int64_t Rmax = stride == 1 ? hb + 2 : 2 * hb + 1;
            const int64_t Pp = (hb * Wo + 15) / 16 * 16;
            buf.resize(size_t(Rmax * W + 2 * (W + 1) + 32));
            D.resize(size_t(E * Pp + 16));
            tail.resize(size_t(rows * 16));
            for (int64_t it = items * i / k; it < items * (i + 1) / k; ++it) {
                const int64_t n = it / nb, yo0 = (it % nb) * hb, yo1 = std::min(Ho, yo0 + hb);
                const int64_t no = yo1 - yo0, P = no * Wo;
                // the band's input rows, halo included: y0 .. y0 + R - 1
                const int64_t y0 = stride * yo0 - 1, R = stride == 1 ? no + 2 : 2 * no + 1;
                const int64_t ya = std::max<int64_t>(0, y0), yb = std::min<int64_t>(H, y0 + R);
                float* rows0 = buf.data() + 1;   // buffer row r = input row y0 + r
                std::memset(buf.data(), 0, size_t(R * W + 2 * (W + 1) + 32) * sizeof(float));
                for (int64_t c = 0; c < E; ++c) {
                    expand_row(eip, eix, edata, eb ? eb[c] : 0.f, X + n * cols * HW + ya * W, HW,
                               (yb - ya) * W, c, rows0 + (ya - y0) * W, act_e);
                    float* d = D.data() + c * Pp;
                    if (stride == 1)
                        dw_flat_core(rows0 + W, d, w + c * 9, bd ? bd[c] : 0.f, no, W, act, mL.data(), mR.data());
                    else
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
                        dw_plane_s2(rows0 + W, d, w + c * 9, bd ? bd[c] : 0.f, 2 * no, W, act, -1);
#else
                        dw_rows_s2_generic(rows0, d, w + c * 9, bd ? bd[c] : 0.f, no, W, Wo, act);
#endif
                }
                float* Yb = Y + n * rows * HWo + yo0 * Wo;
                int64_t p0 = 0;
                for (; p0 + 64 <= P; p0 += 64)
                    tile_rows<64>(pip, pix, pdata, pb, D.data() + p0, Pp, Yb + p0, rows, HWo, act_p);
                for (; p0 + 16 <= P; p0 += 16)
                    tile_rows<16>(pip, pix, pdata, pb, D.data() + p0, Pp, Yb + p0, rows, HWo, act_p);
                if (p0 < P) {
                    tile_rows<16>(pip, pix, pdata, pb, D.data() + p0, Pp, tail.data(), rows, 16, act_p);
                    for (int64_t r = 0; r < rows; ++r)
                        std::memcpy(Yb + r * HWo + p0, tail.data() + r * 16, size_t(P - p0) * sizeof(float));
                }
            }
        });
        return true;
    }

private:
    int64_t m_stride = 1;
    int64_t m_act_e = 0;
    int64_t m_act = 0;
    int64_t m_act_p = 0;
};

}  // namespace prunebench

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<prunebench::SparseMatMul>>(),
    std::make_shared<ov::OpExtension<prunebench::DepthwiseConv>>(),
    std::make_shared<ov::OpExtension<prunebench::ExpandDepthwise>>(),
    std::make_shared<ov::OpExtension<prunebench::InvertedBlock>>(),
}));
