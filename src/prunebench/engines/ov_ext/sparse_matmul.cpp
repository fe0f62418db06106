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
//
// The products run on the thread OpenVINO calls the operation on. Splitting them over threads
// from inside OpenVINO's pinned inference (its TBB arena, or a pool of our own) made them 2-5x
// slower on this 2-core machine than one thread; see the README's openvino section.
#include <openvino/core/extension.hpp>
#include <openvino/core/op_extension.hpp>
#include <openvino/op/op.hpp>

#include <algorithm>
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


// y[r] = act(sum_k data[k] * x[indices[k]] + bias[r]) for one input vector.
template <typename P, typename I>
static void spmv(const P* indptr, const I* idx, const float* data, const float* bias,
                 const float* x, float* y, int64_t rows, int act) {
    for (int64_t r = 0; r < rows; ++r) {
        float acc = 0.f;
        const P lo = indptr[r], hi = indptr[r + 1];
#pragma omp simd reduction(+ : acc)
        for (P k = lo; k < hi; ++k) acc += data[k] * x[idx[k]];
        y[r] = act1(acc + (bias ? bias[r] : 0.f), act);
    }
}

// Y[r, p] = act(sum_k data[k] * X[indices[k], p] + bias[r]) for X [cols, n] row-major:
// 64 columns (four vectors) of one row at a time; the 64-column tile of X stays in cache while
// every row reads it.
template <typename P, typename I>
static void left(const P* indptr, const I* idx, const float* data, const float* bias,
                 const float* X, float* Y, int64_t rows, int64_t n, int act) {
    const int64_t T = 64;
    const int64_t tiles = (n + T - 1) / T;
    {
        for (int64_t t = 0; t < tiles; ++t) {
            const int64_t p0 = t * T;
            const int64_t w = std::min(T, n - p0);
            for (int64_t r = 0; r < rows; ++r) {
                const P lo = indptr[r], hi = indptr[r + 1];
                const float bb = bias ? bias[r] : 0.f;
                float* yr = Y + r * n + p0;
                if (w == T) {
                    v16 a0 = splat(bb), a1 = a0, a2 = a0, a3 = a0;
                    for (P k = lo; k < hi; ++k) {
                        const v16 v = splat(data[k]);
                        const float* xr = X + int64_t(idx[k]) * n + p0;
                        a0 += v * load16(xr);
                        a1 += v * load16(xr + 16);
                        a2 += v * load16(xr + 32);
                        a3 += v * load16(xr + 48);
                    }
                    store16(yr, act16(a0, act));
                    store16(yr + 16, act16(a1, act));
                    store16(yr + 32, act16(a2, act));
                    store16(yr + 48, act16(a3, act));
                } else {
                    float acc[64];
                    for (int64_t j = 0; j < w; ++j) acc[j] = bb;
                    for (P k = lo; k < hi; ++k) {
                        const float v = data[k];
                        const float* xr = X + int64_t(idx[k]) * n + p0;
                        for (int64_t j = 0; j < w; ++j) acc[j] += v * xr[j];
                    }
                    for (int64_t j = 0; j < w; ++j) yr[j] = act1(acc[j], act);
                }
            }
        }
    }
}

// src [a, b] -> dst [b, a], in 32x32 blocks
static void transpose(const float* src, float* dst, int64_t a, int64_t b) {
    for (int64_t i0 = 0; i0 < a; i0 += 32) {
        const int64_t i1 = std::min(a, i0 + 32);
        for (int64_t j0 = 0; j0 < b; j0 += 32) {
            const int64_t j1 = std::min(b, j0 + 32);
            for (int64_t i = i0; i < i1; ++i)
                for (int64_t j = j0; j < j1; ++j) dst[j * a + i] = src[i * b + j];
        }
    }
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
        outputs[0].set_shape(shape);
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
                    left(indptr, idx, data, bias, X + n * cols * inner, Y + n * rows * inner, rows, inner, act);
            }
            return;
        }
        if (lead == 1) {
            spmv(indptr, idx, data, bias, X, Y, rows, act);
            return;
        }
        // rows of x: Y = X @ W.T as YT = W @ XT, transposing in and out
        thread_local std::vector<float> XT, YT;
        XT.resize(size_t(cols * lead));
        YT.resize(size_t(rows * lead));
        transpose(X, XT.data(), lead, cols);
        left(indptr, idx, data, bias, XT.data(), YT.data(), rows, lead, act);
        transpose(YT.data(), Y, rows, lead);
    }

    int64_t m_mode = 0;
    int64_t m_act = 0;
};

}  // namespace prunebench

OPENVINO_CREATE_EXTENSIONS(std::vector<ov::Extension::Ptr>({
    std::make_shared<ov::OpExtension<prunebench::SparseMatMul>>(),
}));
