// aotc_cpu_gemm.h: GEMM (mm, addmm, bmm) for the CPU backend: a
// register-blocked micro-kernel ([Note: GEMM micro-kernel]). Conventions
// (element types, strides, numerics, return codes) are those of
// aotc_cpu_kernels.h, which includes this header at its end: include either.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "aotc_cpu_kernels.h"

namespace aotc_rt {
namespace kernels {

// -- GEMM -------------------------------------------------------------------------

namespace detail {

// [Note: GEMM micro-kernel] C is computed in kGemmMR x kGemmNR micro-tiles
// held in registers (6 x 16 floats: twelve 8-float vectors, with two B
// vectors and one broadcast A value: 15 of AVX2's 16 registers). A is packed
// per task into k-major panels of kGemmMR rows (float, zero-padded rows); B is
// read in place when it is a float32 matrix with unit column stride (a
// weight, usually: no per-call packing, so a small-M GEMM reads B once), else
// packed once per call into such a matrix. Edge columns (N % 16) go through a
// zero-padded 16-wide copy. K is blocked by kGemmKC so the A block stays in L2
// and a B panel in L1; the float tile of C (kGemmMC x kGemmNC) lives on the
// task's stack and is rounded once in the epilogue. Each output element's
// sum runs over k in order, so results do not depend on the thread count.
constexpr int64_t kGemmMR = 6;
constexpr int64_t kGemmNR = 16;
constexpr int64_t kGemmMC = 8 * kGemmMR;   // rows per task
constexpr int64_t kGemmNC = 16 * kGemmNR;  // columns per task
constexpr int64_t kGemmKC = 256;           // depth per A block

// c[r * ldc + j] (+)= sum_{k < kc} a[k * MR + r] * b[k * ldb + j], r < MR, j < NR.
inline void gemm_micro(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                       int64_t ldc, bool accumulate) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc[kGemmMR][2];
#pragma GCC unroll 6
  for (int r = 0; r < kGemmMR; ++r) {
    acc[r][0] = accumulate ? _mm256_loadu_ps(c + r * ldc) : _mm256_setzero_ps();
    acc[r][1] = accumulate ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * ldb);
    const __m256 b1 = _mm256_loadu_ps(b + k * ldb + 8);
#pragma GCC unroll 6
    for (int r = 0; r < kGemmMR; ++r) {
      const __m256 ar = _mm256_broadcast_ss(a + k * kGemmMR + r);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kGemmMR; ++r) {
    _mm256_storeu_ps(c + r * ldc, acc[r][0]);
    _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
  }
#else
  float acc[kGemmMR][kGemmNR];
  for (int r = 0; r < kGemmMR; ++r)
    for (int j = 0; j < kGemmNR; ++j) acc[r][j] = accumulate ? c[r * ldc + j] : 0.0f;
  for (int64_t k = 0; k < kc; ++k)
    for (int r = 0; r < kGemmMR; ++r) {
      const float ar = a[k * kGemmMR + r];
      for (int j = 0; j < kGemmNR; ++j) acc[r][j] = fused_madd(ar, b[k * ldb + j], acc[r][j]);
    }
  for (int r = 0; r < kGemmMR; ++r)
    for (int j = 0; j < kGemmNR; ++j) c[r * ldc + j] = acc[r][j];
#endif
}

}  // namespace detail

// out[b, i, j] = alpha * sum_k a[b, i, k] * b[b, k, j] + beta * bias[b, i, j]
// for b < batch, i < M, j < N; |out| is contiguous [batch, M, N]. |bias| is
// optional (data == nullptr) and broadcast through its strides (0 for a
// broadcast dim); beta == 0 ignores it entirely (NaN in it does not
// propagate), as addmm does. mm: batch 1, no bias; addmm: batch 1;
// bmm: no bias. Operands with sb == 0 are shared by every batch.
// [Note: GEMM micro-kernel] describes the blocking; |epi| runs on each
// stored row segment ([Note: extern epilogues]; row = b * M + i).
template <typename T, typename Epilogue = NoEpilogue>
int32_t gemm(const KernelContext& ctx, int64_t batch, int64_t M, int64_t N, int64_t K, Matrix<T> a,
             Matrix<T> b, Matrix<T> bias, float alpha, float beta, T* out,
             const Epilogue& epi = Epilogue{}) {
  using detail::kGemmKC;
  using detail::kGemmMC;
  using detail::kGemmMR;
  using detail::kGemmNC;
  using detail::kGemmNR;
  if (batch <= 0 || M <= 0 || N <= 0) return AOTC_ABI_OK;

  // B as float32 rows with unit column stride: used in place when it already
  // is one, else packed once (per batch, or once when shared by all batches).
  const float* panel = nullptr;
  int64_t panel_sb = 0;
  int64_t panel_ld = 0;
  detail::Scratch packed;
  bool in_place = false;
  if constexpr (std::is_same<T, float>::value) {
    if (b.s1 == 1) {
      panel = b.data;
      panel_sb = b.sb;
      panel_ld = b.s0;
      in_place = true;
    }
  }
  if (!in_place && K > 0) {
    const int64_t packed_batches = b.sb == 0 ? 1 : batch;
    if (!packed.allocate(packed_batches * K * N)) {
      return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED, "gemm: cannot allocate %lld bytes to pack B",
                  static_cast<long long>(packed_batches * K * N * 4));
    }
    float* dst = packed.data();
    parallel_for(ctx, 0, packed_batches * K, detail::grain_for(N), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const T* src = b.data + (r / K) * b.sb + (r % K) * b.s0;
        float* row = dst + r * N;
        if (b.s1 == 1) {
          for (int64_t j = 0; j < N; ++j) row[j] = to_f32(src[j]);
        } else {
          for (int64_t j = 0; j < N; ++j) row[j] = to_f32(src[j * b.s1]);
        }
      }
    });
    panel = dst;
    panel_sb = b.sb == 0 ? 0 : K * N;
    panel_ld = N;
  }

  const bool use_bias = bias.data != nullptr && beta != 0.0f;
  // Epilogue: row i of batch bb, columns [j0, j0 + cols), from float sums.
  auto store_row = [&](int64_t bb, int64_t i, int64_t j0, int64_t cols, const float* acc) {
    T* crow = out + (bb * M + i) * N + j0;
    if (use_bias) {
      const T* brow = bias.data + bb * bias.sb + i * bias.s0 + j0 * bias.s1;
      for (int64_t j = 0; j < cols; ++j)
        crow[j] = from_f32<T>(alpha * acc[j] + beta * to_f32(brow[j * bias.s1]));
    } else {
      for (int64_t j = 0; j < cols; ++j) crow[j] = from_f32<T>(alpha * acc[j]);
    }
    epi(bb * M + i, j0, j0 + cols);
  };
  // A few rows (a GEMV, decode-time linear layers): stream whole rows of B
  // (1 KB per k) instead of 64-byte micro-panels; it is memory-bound.
  if (M < kGemmMR) {
    constexpr int64_t kCols = 256;
    const int64_t col_blocks = (N + kCols - 1) / kCols;
    const int64_t grain = detail::grain_for(M * kCols * std::max<int64_t>(K, 1), int64_t{1} << 18);
    parallel_for(ctx, 0, batch * col_blocks, grain, [&](int64_t begin, int64_t end) {
      float acc[kGemmMR][kCols];
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t j0 = (unit % col_blocks) * kCols;
        const int64_t bb = unit / col_blocks;
        const int64_t cols = std::min(kCols, N - j0);
        const T* arow = a.data + bb * a.sb;
        const float* bpanel = panel + bb * panel_sb + j0;
        for (int64_t r = 0; r < M; ++r) std::fill(acc[r], acc[r] + cols, 0.0f);
        for (int64_t k = 0; k < K; ++k) {
          float av[kGemmMR];
          for (int64_t r = 0; r < M; ++r) av[r] = to_f32(arow[r * a.s0 + k * a.s1]);
          detail::fma_rows<kCols>(acc, av, M, bpanel + k * panel_ld, 1, cols);
        }
        for (int64_t r = 0; r < M; ++r) store_row(bb, r, j0, cols, acc[r]);
      }
    });
    return AOTC_ABI_OK;
  }
  // A task computes one kGemmMC x kGemmNC tile of one batch.
  const int64_t row_blocks = (M + kGemmMC - 1) / kGemmMC;
  const int64_t col_blocks = (N + kGemmNC - 1) / kGemmNC;
  const int64_t grain =
      detail::grain_for(kGemmMC * kGemmNC * std::max<int64_t>(K, 1), int64_t{1} << 20);
  parallel_for(ctx, 0, batch * row_blocks * col_blocks, grain, [&](int64_t begin, int64_t end) {
    alignas(64) float tile[kGemmMC * kGemmNC];
    alignas(64) float apack[kGemmMC * kGemmKC];
    alignas(64) float edge[kGemmKC * kGemmNR];
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t j0 = (unit % col_blocks) * kGemmNC;
      const int64_t i0 = (unit / col_blocks % row_blocks) * kGemmMC;
      const int64_t bb = unit / col_blocks / row_blocks;
      const int64_t rows = std::min(kGemmMC, M - i0);
      const int64_t cols = std::min(kGemmNC, N - j0);
      const int64_t groups = (rows + kGemmMR - 1) / kGemmMR;
      const T* ablock = a.data + bb * a.sb + i0 * a.s0;
      const float* bblock = panel + bb * panel_sb + j0;
      if (K == 0) std::fill(tile, tile + kGemmMC * kGemmNC, 0.0f);
      for (int64_t k0 = 0; k0 < K; k0 += kGemmKC) {
        const int64_t kc = std::min(kGemmKC, K - k0);
        // A block: |groups| panels of kGemmMR rows, k-major, zero-padded rows.
        for (int64_t g = 0; g < groups; ++g) {
          float* dst = apack + g * kGemmMR * kGemmKC;
          for (int64_t r = 0; r < kGemmMR; ++r) {
            const int64_t i = g * kGemmMR + r;
            if (i >= rows) {
              for (int64_t k = 0; k < kc; ++k) dst[k * kGemmMR + r] = 0.0f;
              continue;
            }
            const T* src = ablock + i * a.s0 + k0 * a.s1;
            for (int64_t k = 0; k < kc; ++k) dst[k * kGemmMR + r] = to_f32(src[k * a.s1]);
          }
        }
        for (int64_t jp = 0; jp < cols; jp += kGemmNR) {
          const float* bp = bblock + k0 * panel_ld + jp;
          int64_t ldb = panel_ld;
          if (cols - jp < kGemmNR) {  // edge columns: a zero-padded copy
            const int64_t n = cols - jp;
            for (int64_t k = 0; k < kc; ++k) {
              for (int64_t j = 0; j < kGemmNR; ++j)
                edge[k * kGemmNR + j] = j < n ? bp[k * ldb + j] : 0.0f;
            }
            bp = edge;
            ldb = kGemmNR;
          }
          for (int64_t g = 0; g < groups; ++g) {
            detail::gemm_micro(kc, apack + g * kGemmMR * kGemmKC, bp, ldb,
                               tile + g * kGemmMR * kGemmNC + jp, kGemmNC, k0 > 0);
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) store_row(bb, i0 + r, j0, cols, tile + r * kGemmNC);
    }
  });
  return AOTC_ABI_OK;
}

}  // namespace kernels
}  // namespace aotc_rt
