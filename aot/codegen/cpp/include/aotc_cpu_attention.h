// aotc_cpu_attention.h: scaled_dot_product_attention for the CPU backend,
// tiled with an online softmax. Conventions are those of aotc_cpu_kernels.h,
// which includes this header at its end: include either.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "aotc_cpu_kernels.h"

namespace aotc_rt {
namespace kernels {

// -- attention ----------------------------------------------------------------------

// q [batch, heads, q_len, head_dim], k [batch, kv_heads, kv_len, head_dim],
// v [batch, kv_heads, kv_len, v_dim]; out [batch, heads, q_len, v_dim]
// contiguous. Query head h reads key/value head h / (heads / kv_heads)
// (grouped-query attention; kv_heads == heads otherwise).
struct SdpaShape {
  int64_t batch, heads, kv_heads;
  int64_t q_len, kv_len;
  int64_t head_dim, v_dim;
  float scale;
  bool causal;  // row i attends keys j <= i (top-left aligned, as eager)
};

// Attention with an online softmax: a task takes 32 query rows of one
// (batch, head), walks the keys in blocks of 64 (packed to float32, keys
// transposed so both products vectorise over independent accumulators),
// and keeps a running max, sum and output row per query; the L x S score
// matrix never exists. |mask| (data nullptr: none) is broadcast through its
// strides over [batch, heads, q_len, kv_len]; a bool mask keeps true
// positions (false adds -inf), any other mask is added to the scaled
// scores. |lse| (nullable) receives logsumexp [batch, heads, q_len] in
// float32 (-inf for a fully masked row).
template <typename T, typename M>
int32_t sdpa(const KernelContext& ctx, const SdpaShape& p, Tensor4<T> q, Tensor4<T> k, Tensor4<T> v,
             Tensor4<M> mask, T* out, float* lse) {
  constexpr int64_t kRows = 32;  // query rows per task
  constexpr int64_t kKeys = 64;  // keys per block
  if (p.kv_heads <= 0 || p.heads % p.kv_heads != 0) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                "scaled_dot_product_attention: %lld query heads are not a multiple of %lld "
                "key/value heads",
                static_cast<long long>(p.heads), static_cast<long long>(p.kv_heads));
  }
  if (p.batch <= 0 || p.heads <= 0 || p.q_len <= 0) return AOTC_ABI_OK;
  const int64_t E = p.head_dim;
  const int64_t Ev = p.v_dim;
  const int64_t group = p.heads / p.kv_heads;
  const int64_t q_tiles = (p.q_len + kRows - 1) / kRows;
  const int64_t units = p.batch * p.heads * q_tiles;
  // Per chunk: key block (transposed), value block, query rows, output rows,
  // scores, running max and sum.
  const int64_t scratch = kKeys * E + kKeys * Ev + kRows * E + kRows * Ev + kKeys + 2 * kRows;
  detail::ChunkError alloc_error;

  parallel_for(ctx, 0, units, 1, [&](int64_t begin, int64_t end) {
    detail::Scratch buffer;
    if (!buffer.allocate(scratch)) {
      alloc_error.set();
      return;
    }
    float* kt = buffer.data();         // [E][kKeys]
    float* vb = kt + kKeys * E;        // [kKeys][Ev]
    float* qf = vb + kKeys * Ev;       // [kRows][E]
    float* acc = qf + kRows * E;       // [kRows][Ev]
    float* s = acc + kRows * Ev;       // [kKeys]
    float* row_max = s + kKeys;        // [kRows]
    float* row_sum = row_max + kRows;  // [kRows]
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t tile = unit % q_tiles;
      const int64_t bh = unit / q_tiles;
      const int64_t h = bh % p.heads;
      const int64_t bb = bh / p.heads;
      const int64_t hk = h / group;
      const int64_t i0 = tile * kRows;
      const int64_t rows = std::min(kRows, p.q_len - i0);
      const T* qbase = q.data + bb * q.s[0] + h * q.s[1];
      const T* kbase = k.data + bb * k.s[0] + hk * k.s[1];
      const T* vbase = v.data + bb * v.s[0] + hk * v.s[1];
      const M* mbase = mask.data ? mask.data + bb * mask.s[0] + h * mask.s[1] : nullptr;

      for (int64_t r = 0; r < rows; ++r) {
        const T* qrow = qbase + (i0 + r) * q.s[2];
        for (int64_t e = 0; e < E; ++e) qf[r * E + e] = to_f32(qrow[e * q.s[3]]);
        for (int64_t d = 0; d < Ev; ++d) acc[r * Ev + d] = 0.0f;
        row_max[r] = -detail::kInf;
        row_sum[r] = 0.0f;
      }
      const int64_t kv_end = p.causal ? std::min(p.kv_len, i0 + rows) : p.kv_len;
      for (int64_t j0 = 0; j0 < kv_end; j0 += kKeys) {
        const int64_t nk = std::min(kKeys, kv_end - j0);
        for (int64_t jj = 0; jj < nk; ++jj) {
          const T* krow = kbase + (j0 + jj) * k.s[2];
          for (int64_t e = 0; e < E; ++e) kt[e * kKeys + jj] = to_f32(krow[e * k.s[3]]);
          const T* vrow = vbase + (j0 + jj) * v.s[2];
          for (int64_t d = 0; d < Ev; ++d) vb[jj * Ev + d] = to_f32(vrow[d * v.s[3]]);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = i0 + r;
          // Scores: s[jj] = scale * q_i . k_j, summed over e in order.
          for (int64_t jj = 0; jj < nk; ++jj) s[jj] = 0.0f;
          for (int64_t e = 0; e < E; ++e) {
            const float qe = qf[r * E + e];
            const float* kte = kt + e * kKeys;
            for (int64_t jj = 0; jj < nk; ++jj) s[jj] += qe * kte[jj];
          }
          for (int64_t jj = 0; jj < nk; ++jj) s[jj] *= p.scale;
          if (mbase) {
            const M* mrow = mbase + i * mask.s[2] + j0 * mask.s[3];
            for (int64_t jj = 0; jj < nk; ++jj) s[jj] += mask_value(mrow[jj * mask.s[3]]);
          }
          if (p.causal) {
            for (int64_t jj = std::max<int64_t>(i + 1 - j0, 0); jj < nk; ++jj)
              s[jj] = -detail::kInf;
          }
          // Online softmax update. NaN scores never win the max but make
          // their exp NaN, so they reach the sum and the output.
          float block_max = -detail::kInf;
          for (int64_t jj = 0; jj < nk; ++jj) block_max = s[jj] > block_max ? s[jj] : block_max;
          const float old_max = row_max[r];
          const float new_max = block_max > old_max ? block_max : old_max;
          // All -inf so far: exp(s - 0) is 0 for -inf and NaN for NaN.
          const float shift = new_max == -detail::kInf ? 0.0f : new_max;
          const float rescale = old_max == new_max ? 1.0f : std::exp(old_max - shift);
          float block_sum = 0.0f;
          for (int64_t jj = 0; jj < nk; ++jj) {
            s[jj] = std::exp(s[jj] - shift);
            block_sum += s[jj];
          }
          row_sum[r] = row_sum[r] * rescale + block_sum;
          row_max[r] = new_max;
          float* arow = acc + r * Ev;
          if (rescale != 1.0f) {
            for (int64_t d = 0; d < Ev; ++d) arow[d] *= rescale;
          }
          for (int64_t jj = 0; jj < nk; ++jj) {
            const float pj = s[jj];
            const float* vj = vb + jj * Ev;
            for (int64_t d = 0; d < Ev; ++d) arow[d] += pj * vj[d];
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        T* orow = out + ((bb * p.heads + h) * p.q_len + i) * Ev;
        const float l = row_sum[r];
        const float* arow = acc + r * Ev;
        if (l == 0.0f) {  // every score -inf: eager gives 0
          for (int64_t d = 0; d < Ev; ++d) orow[d] = from_f32<T>(0.0f);
        } else {
          for (int64_t d = 0; d < Ev; ++d) orow[d] = from_f32<T>(arow[d] / l);
        }
        if (lse) lse[(bb * p.heads + h) * p.q_len + i] = row_max[r] + std::log(l);
      }
    }
  });
  if (alloc_error.failed()) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED,
                "scaled_dot_product_attention: cannot allocate %lld bytes of scratch",
                static_cast<long long>(scratch * 4));
  }
  return AOTC_ABI_OK;
}

}  // namespace kernels
}  // namespace aotc_rt
