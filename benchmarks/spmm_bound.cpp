// The floor of a CSR SpMM inner loop on this CPU, written by hand with AVX-512 intrinsics (no
// numba, no LLVM IR of ours), for benchmarks/bench_spmm_bound.py.
//
// Each output row r accumulates, for each of its stored values w_k in column c_k,
// w_k * T[c_k, 0:32] (the transposed batch of 32: two 16-float vectors per value), in four
// independent sets of accumulators. Only the placement of T changes between lines: the
// columns a row touches lie in a T of `cols` rows, 128 bytes each, so cols = 128 keeps T in
// L1 and cols = 4096 (the shape) puts it in L2.
//
//   spmm_bound COLS PER_ROW ROWS REPEATS
//
// prints "reference 0 SUM" (every output summed in scalar double precision), then one line per
// variant: "variant ns_per_value checksum"
//   index     address = column * 32 floats, weight broadcast from memory (what the numba
//             kernel emits: movslq, imul, vbroadcastss, two vfmadd231ps with memory operands)
//   offset    byte offsets stored instead of columns (no multiply, no indexed addressing)
//   permute   16 weights loaded at once and broadcast by vpermps (fewer loads, more shuffles)
//   prefetch  index, plus a prefetch of both lines of T for the value 16 ahead
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace {

constexpr int kBatch = 32;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Acc {
  __m512 lo[4], hi[4];
  Acc() {
    for (int u = 0; u < 4; ++u) lo[u] = hi[u] = _mm512_setzero_ps();
  }
  inline void add(int u, __m512 w, const float* t) {
    lo[u] = _mm512_fmadd_ps(w, _mm512_load_ps(t), lo[u]);
    hi[u] = _mm512_fmadd_ps(w, _mm512_load_ps(t + 16), hi[u]);
  }
  inline void store(float* y) const {
    _mm512_store_ps(y, _mm512_add_ps(_mm512_add_ps(lo[0], lo[1]), _mm512_add_ps(lo[2], lo[3])));
    _mm512_store_ps(y + 16, _mm512_add_ps(_mm512_add_ps(hi[0], hi[1]), _mm512_add_ps(hi[2], hi[3])));
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: spmm_bound COLS PER_ROW ROWS REPEATS\n");
    return 2;
  }
  const int cols = std::atoi(argv[1]), per_row = std::atoi(argv[2]) / 16 * 16;
  const int rows = std::atoi(argv[3]), repeats = std::atoi(argv[4]);
  if (cols < 1 || per_row < 16 || rows < 1 || repeats < 1) {
    std::fprintf(stderr, "COLS >= 1, PER_ROW >= 16, ROWS >= 1, REPEATS >= 1\n");
    return 2;
  }
  const size_t n = size_t(rows) * per_row;
  std::vector<int32_t> col(n), off(n);
  std::vector<float> val(n);
  std::mt19937 rng(1);
  for (int r = 0; r < rows; ++r) {
    for (int k = 0; k < per_row; ++k) {
      col[size_t(r) * per_row + k] = int32_t(rng() % unsigned(cols));
      val[size_t(r) * per_row + k] = float(rng() % 1000) / 1000.0f;
    }
    std::sort(col.begin() + size_t(r) * per_row, col.begin() + size_t(r + 1) * per_row);
  }
  for (size_t i = 0; i < n; ++i) off[i] = col[i] * kBatch * 4;
  auto* T = static_cast<float*>(std::aligned_alloc(64, size_t(cols) * kBatch * 4));
  auto* Y = static_cast<float*>(std::aligned_alloc(64, size_t(rows) * kBatch * 4));
  for (size_t i = 0; i < size_t(cols) * kBatch; ++i) T[i] = float(i % 7) - 3.0f;
  const char* tb = reinterpret_cast<const char*>(T);
  // the scalar double-precision sum of every output, the variants' checksums are compared to
  double reference = 0;
  for (int r = 0; r < rows; ++r)
    for (int k = 0; k < per_row; ++k)
      for (int b = 0; b < kBatch; ++b)
        reference += double(val[size_t(r) * per_row + k]) * T[size_t(col[size_t(r) * per_row + k]) * kBatch + b];
  std::printf("reference 0 %.17g\n", reference);
  const char* names[] = {"index", "offset", "permute", "prefetch"};
  for (int variant = 0; variant < 4; ++variant) {
    double best = 1e30;
    for (int rep = 0; rep < repeats; ++rep) {
      const double t0 = now();
      for (int r = 0; r < rows; ++r) {
        const int32_t* c = &col[size_t(r) * per_row];
        const int32_t* o = &off[size_t(r) * per_row];
        const float* v = &val[size_t(r) * per_row];
        Acc a;
        if (variant == 0) {
          for (int k = 0; k < per_row; k += 4)
            for (int u = 0; u < 4; ++u) a.add(u, _mm512_set1_ps(v[k + u]), T + size_t(c[k + u]) * kBatch);
        } else if (variant == 1) {
          for (int k = 0; k < per_row; k += 4)
            for (int u = 0; u < 4; ++u)
              a.add(u, _mm512_set1_ps(v[k + u]), reinterpret_cast<const float*>(tb + o[k + u]));
        } else if (variant == 2) {
          for (int k = 0; k < per_row; k += 16) {
            const __m512 w16 = _mm512_loadu_ps(v + k);
            for (int u = 0; u < 16; ++u)
              a.add(u & 3, _mm512_permutexvar_ps(_mm512_set1_epi32(u), w16),
                    reinterpret_cast<const float*>(tb + o[k + u]));
          }
        } else {
          for (int k = 0; k < per_row; k += 4)
            for (int u = 0; u < 4; ++u) {
              if (k + u + 16 < per_row) {
                const char* p = tb + o[k + u + 16];
                _mm_prefetch(p, _MM_HINT_T0);
                _mm_prefetch(p + 64, _MM_HINT_T0);
              }
              a.add(u, _mm512_set1_ps(v[k + u]), T + size_t(c[k + u]) * kBatch);
            }
        }
        a.store(Y + size_t(r) * kBatch);
      }
      best = std::min(best, now() - t0);
    }
    double check = 0;
    for (size_t i = 0; i < size_t(rows) * kBatch; ++i) check += Y[i];
    std::printf("%s %.4f %.17g\n", names[variant], best * 1e9 / double(n), check);
  }
  std::free(T);
  std::free(Y);
  return 0;
}
