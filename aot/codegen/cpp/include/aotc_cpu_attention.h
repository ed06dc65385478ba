// aotc_cpu_attention.h: scaled_dot_product_attention for the CPU backend,
// tiled with an online softmax ([Note: attention tiles]). Conventions are
// those of aotc_cpu_kernels.h, which includes
// this header at its end: include that one (it orders the families).
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

namespace detail {

// [Note: attention tiles] A task takes a tile of up to kSdpaRows query rows
// of one (batch, head) and walks the keys in blocks of kSdpaKeys with an
// online softmax (running max, sum and output per row); the L x S score
// matrix never exists, only per-task scratch of O(tile) floats.
// - Layout: a tile is stored transposed, query rows fastest: Q^T [E][R],
//   the score block S^T [keys][R], the output O^T [Ev][R] (R: the rows
//   rounded up to 8). Q is transposed once per tile, the mask once per
//   block, O once at the end, 8 x 8 in registers.
// - Products: S^T = K Q^T and O^T += V^T P^T are one micro-kernel
//   (sdpa_micro): kSdpaMR values of K (or V) broadcast from memory times 16
//   rows of Q^T (or P^T), twelve 8-float accumulators (AVX2/FMA; plain loops
//   otherwise). So K and V are read in place with any strides when they are
//   float32: nothing is packed, and the query heads of a GQA group share
//   them through the cache. bf16 blocks are converted to float once per
//   tile and block.
// - Softmax: 8 rows per vector, one vector per key: max, exp (exp_ps, a
//   polynomial), sum in key order. A row's sums run over its keys in order,
//   so results do not depend on the thread count.
// - Causal: a tile stops at its last row's key; in the block that crosses
//   the diagonal each 16-row group stops at its own last key and the rest
//   is masked element by element. A task pairs tile t with tile n-1-t, so
//   tasks cost the same (the pool splits the range statically).
// - Sizes: time was flat over 16-64 rows and 32-128 keys per tile; 32 x 64
//   keeps the three arrays in L1. Float32 [1, 8, 1024, 64] runs at about
//   85% of one core's AVX2 FMA peak.
constexpr int64_t kSdpaRows = 32;  // query rows per tile (a multiple of 16)
constexpr int64_t kSdpaKeys = 64;  // keys per block
constexpr int kSdpaMR = 6;         // K/V values per micro-kernel call

#if defined(__AVX2__) && defined(__FMA__)

// exp(x) for 8 floats x <= 0 (what attention passes): Cephes' expf,
// x = n ln2 + r with |r| <= ln2/2 and a degree-6 polynomial, ~1 ulp. x is
// clamped at -88 (x second, so a NaN stays), where n = -127 and 2^n built
// from the exponent bits is exactly 0: -inf and any x below about -87.7
// give 0, NaN gives NaN. n is rounded by adding 1.5 * 2^23 (+ the bias
// 127, so the low bits of the sum are n + 127 as an integer).
inline __m256 exp_ps(__m256 x) {
  const __m256 magic = _mm256_set1_ps(12582912.0f + 127.0f);
  const __m256 xc = _mm256_max_ps(_mm256_set1_ps(-88.0f), x);
  const __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
  const __m256 n = _mm256_sub_ps(t, magic);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(t), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

#endif

// c[m*ldc + r] = cs[r] * c[m*ldc + r] + sum_{k < kc} a[m*am + k*ak] * b[k*ldb + r]
// for m < MR, r < 8*NV; |cs| nullptr starts from 0 (and |scale| multiplies
// the sum only then: the scores). One product of [Note: attention tiles].
template <int MR, int NV>
inline void sdpa_micro(int64_t kc, const float* a, int64_t am, int64_t ak, const float* b,
                       int64_t ldb, float* c, int64_t ldc, const float* cs, float scale) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc[MR][NV];
  if (cs) {
    __m256 sv[NV];
    for (int v = 0; v < NV; ++v) sv[v] = _mm256_loadu_ps(cs + 8 * v);
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v)
        acc[m][v] = _mm256_mul_ps(_mm256_loadu_ps(c + m * ldc + 8 * v), sv[v]);
  } else {
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + k * ldb + 8 * v);
    const float* ak_ptr = a + k * ak;
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) {
      const __m256 am_v = _mm256_broadcast_ss(ak_ptr + m * am);
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm256_fmadd_ps(am_v, bv[v], acc[m][v]);
    }
  }
  const __m256 sv = _mm256_set1_ps(scale);
#pragma GCC unroll 6
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v)
      _mm256_storeu_ps(c + m * ldc + 8 * v, cs ? acc[m][v] : _mm256_mul_ps(acc[m][v], sv));
#else
  float acc[MR][8 * NV];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < 8 * NV; ++r) acc[m][r] = cs ? c[m * ldc + r] * cs[r] : 0.0f;
  for (int64_t k = 0; k < kc; ++k)
    for (int m = 0; m < MR; ++m) {
      const float am_v = a[m * am + k * ak];
      for (int r = 0; r < 8 * NV; ++r) acc[m][r] = fused_madd(am_v, b[k * ldb + r], acc[m][r]);
    }
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < 8 * NV; ++r) c[m * ldc + r] = cs ? acc[m][r] : acc[m][r] * scale;
#endif
}

// sdpa_micro for m < M (any M), r < 8*NV.
template <int NV>
inline void sdpa_product(int64_t M, int64_t kc, const float* a, int64_t am, int64_t ak,
                         const float* b, int64_t ldb, float* c, int64_t ldc, const float* cs,
                         float scale) {
  int64_t m = 0;
  for (; m + kSdpaMR <= M; m += kSdpaMR)
    sdpa_micro<kSdpaMR, NV>(kc, a + m * am, am, ak, b, ldb, c + m * ldc, ldc, cs, scale);
  a += m * am;
  c += m * ldc;
  switch (M - m) {
    case 5:
      sdpa_micro<5, NV>(kc, a, am, ak, b, ldb, c, ldc, cs, scale);
      break;
    case 4:
      sdpa_micro<4, NV>(kc, a, am, ak, b, ldb, c, ldc, cs, scale);
      break;
    case 3:
      sdpa_micro<3, NV>(kc, a, am, ak, b, ldb, c, ldc, cs, scale);
      break;
    case 2:
      sdpa_micro<2, NV>(kc, a, am, ak, b, ldb, c, ldc, cs, scale);
      break;
    case 1:
      sdpa_micro<1, NV>(kc, a, am, ak, b, ldb, c, ldc, cs, scale);
      break;
    default:
      break;
  }
}

// sdpa_product for a group of |width| rows, 16 or a last group of 8.
inline void sdpa_group(int64_t width, int64_t M, int64_t kc, const float* a, int64_t am, int64_t ak,
                       const float* b, int64_t ldb, float* c, int64_t ldc, const float* cs,
                       float scale) {
  if (width >= 16) {
    sdpa_product<2>(M, kc, a, am, ak, b, ldb, c, ldc, cs, scale);
  } else {
    sdpa_product<1>(M, kc, a, am, ak, b, ldb, c, ldc, cs, scale);
  }
}

#if defined(__AVX2__) && defined(__FMA__)

// 8 consecutive elements as float32: to_f32 of a value, mask_value of a
// bool mask element (for float and bf16 the two are the same).
inline __m256 load8(const float* m) { return _mm256_loadu_ps(m); }
inline __m256 load8(const bf16* m) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(m));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline __m256 load8(const bool* m) {
  const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)));
  const __m256 drop = _mm256_castsi256_ps(_mm256_cmpeq_epi32(b, _mm256_setzero_si256()));
  return _mm256_and_ps(drop, _mm256_set1_ps(-kInf));
}

// 8 floats stored as T (bf16: f32_to_bf16's rounding, NaN quietened).
inline void store8(float* dst, __m256 x) { _mm256_storeu_ps(dst, x); }
inline void store8(bf16* dst, __m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)),
                                         _mm256_and_si256(_mm256_srli_epi32(u, 16), one)),
                        16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i h = _mm256_blendv_epi8(rounded, quiet, nan);
  const __m128i packed =
      _mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), packed);
}

#endif

// Q^T: qt[e*R + r] = q[r*ld + e*step] for r < rows, 0 for rows <= r < R.
template <typename T>
inline void sdpa_pack_q(const T* q, int64_t ld, int64_t step, int64_t rows, int64_t E, int64_t R,
                        float* qt) {
  int64_t r8 = 0, e8 = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if (step == 1) {
    r8 = rows / 8 * 8;
    e8 = E / 8 * 8;
    for (int64_t r = 0; r < r8; r += 8) {
      for (int64_t e = 0; e < e8; e += 8) {
        __m256 v[8];
        for (int i = 0; i < 8; ++i) v[i] = load8(q + (r + i) * ld + e);
        transpose8(v);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(qt + (e + i) * R + r, v[i]);
      }
    }
  }
#endif
  for (int64_t r = 0; r < R; ++r) {
    const T* qrow = q + r * ld;
    for (int64_t e = r < r8 ? e8 : 0; e < E; ++e)
      qt[e * R + r] = r < rows ? to_f32(qrow[e * step]) : 0.0f;
  }
}

// out[r*Ev + d] = ot[d*R + r] / sum[r] for r < rows, d < Ev; 0 for a row
// whose sum is 0 (every score -inf: eager gives 0).
template <typename T>
inline void sdpa_store_rows(const float* ot, int64_t R, int64_t rows, int64_t Ev, const float* sum,
                            T* out) {
  int64_t r8 = 0, d8 = 0;
#if defined(__AVX2__) && defined(__FMA__)
  r8 = rows / 8 * 8;
  d8 = Ev / 8 * 8;
  for (int64_t r = 0; r < r8; r += 8) {
    const __m256 l = _mm256_loadu_ps(sum + r);
    const __m256 dead = _mm256_cmp_ps(l, _mm256_setzero_ps(), _CMP_EQ_OQ);
    for (int64_t d = 0; d < d8; d += 8) {
      __m256 v[8];
      for (int i = 0; i < 8; ++i)
        v[i] = _mm256_andnot_ps(dead, _mm256_div_ps(_mm256_loadu_ps(ot + (d + i) * R + r), l));
      transpose8(v);
      for (int i = 0; i < 8; ++i) store8(out + (r + i) * Ev + d, v[i]);
    }
  }
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const float l = sum[r];
    for (int64_t d = r < r8 ? d8 : 0; d < Ev; ++d)
      out[r * Ev + d] = from_f32<T>(l == 0.0f ? 0.0f : ot[d * R + r] / l);
  }
}

// s[jj*R + r] += mask_value(m[r*ms + jj*mj]) for r < rows, jj < nk: the mask
// block transposed onto the scores, 8 x 8 at a time where keys are unit-stride.
template <typename M>
inline void sdpa_add_mask(float* s, int64_t R, int64_t rows, int64_t nk, const M* m, int64_t ms,
                          int64_t mj) {
  int64_t r8 = 0, j8 = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if (mj == 1) {
    r8 = rows / 8 * 8;
    j8 = nk / 8 * 8;
    for (int64_t r = 0; r < r8; r += 8) {
      for (int64_t jj = 0; jj < j8; jj += 8) {
        __m256 v[8];
        for (int i = 0; i < 8; ++i) v[i] = load8(m + (r + i) * ms + jj);
        transpose8(v);
        for (int i = 0; i < 8; ++i) {
          float* sp = s + (jj + i) * R + r;
          _mm256_storeu_ps(sp, _mm256_add_ps(_mm256_loadu_ps(sp), v[i]));
        }
      }
    }
  }
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const M* mrow = m + r * ms;
    for (int64_t jj = r < r8 ? j8 : 0; jj < nk; ++jj) s[jj * R + r] += mask_value(mrow[jj * mj]);
  }
}

// The online softmax step for one score block s [nk][R] (scaled, masked):
// rows i0 + r, keys j0 + jj; causal drops keys past each row. Updates the
// row max |mx| and sum |sum|, writes the output rescale factor to |resc|
// and the probabilities over s. NaN scores never win the max but make
// their exp NaN, so they reach the sum and the output.
inline void sdpa_softmax(float* s, int64_t nk, int64_t R, int64_t i0, int64_t j0, bool causal,
                         float* mx, float* sum, float* resc) {
  const bool diagonal = causal && j0 + nk - 1 > i0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 ninf = _mm256_set1_ps(-kInf);
  for (int64_t r = 0; r < R; r += 8) {
    float* sr = s + r;
    __m256 m = ninf;
    if (diagonal) {
      // Row and key relative to j0: |i0 - j0| < nk + R here, so int32 is safe.
      const __m256i row = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(i0 - j0 + r)),
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      for (int64_t jj = 0; jj < nk; ++jj) {
        const __m256i key = _mm256_set1_epi32(static_cast<int32_t>(jj));
        const __m256 drop = _mm256_castsi256_ps(_mm256_cmpgt_epi32(key, row));
        const __m256 v = _mm256_blendv_ps(_mm256_loadu_ps(sr + jj * R), ninf, drop);
        _mm256_storeu_ps(sr + jj * R, v);
        m = _mm256_max_ps(v, m);  // a NaN v yields m
      }
    } else {
      for (int64_t jj = 0; jj < nk; ++jj) m = _mm256_max_ps(_mm256_loadu_ps(sr + jj * R), m);
    }
    const __m256 old_max = _mm256_loadu_ps(mx + r);
    const __m256 new_max = _mm256_max_ps(m, old_max);
    // All -inf so far: exp(s - 0) is 0 for -inf and NaN for NaN.
    const __m256 shift = _mm256_andnot_ps(_mm256_cmp_ps(new_max, ninf, _CMP_EQ_OQ), new_max);
    const __m256 same = _mm256_cmp_ps(old_max, new_max, _CMP_EQ_OQ);
    const __m256 rescale =
        _mm256_blendv_ps(exp_ps(_mm256_sub_ps(old_max, shift)), _mm256_set1_ps(1.0f), same);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t jj = 0; jj < nk; ++jj) {
      const __m256 p = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(sr + jj * R), shift));
      _mm256_storeu_ps(sr + jj * R, p);
      acc = _mm256_add_ps(acc, p);
    }
    _mm256_storeu_ps(sum + r, _mm256_fmadd_ps(_mm256_loadu_ps(sum + r), rescale, acc));
    _mm256_storeu_ps(mx + r, new_max);
    _mm256_storeu_ps(resc + r, rescale);
  }
#else
  for (int64_t r = 0; r < R; ++r) {
    float block_max = -kInf;
    for (int64_t jj = 0; jj < nk; ++jj) {
      float& v = s[jj * R + r];
      if (diagonal && j0 + jj > i0 + r) v = -kInf;
      block_max = v > block_max ? v : block_max;
    }
    const float old_max = mx[r];
    const float new_max = block_max > old_max ? block_max : old_max;
    const float shift = new_max == -kInf ? 0.0f : new_max;
    const float rescale = old_max == new_max ? 1.0f : std::exp(old_max - shift);
    float block_sum = 0.0f;
    for (int64_t jj = 0; jj < nk; ++jj) {
      float& v = s[jj * R + r];
      v = std::exp(v - shift);
      block_sum += v;
    }
    sum[r] = fused_madd(sum[r], rescale, block_sum);
    mx[r] = new_max;
    resc[r] = rescale;
  }
#endif
}

// Prefetches rows [j0, j0 + count) of k and v (E and Ev floats wide).
inline void sdpa_prefetch(const float* k, int64_t k_ld, const float* v, int64_t v_ld, int64_t j0,
                          int64_t count, int64_t E, int64_t Ev) {
  for (int64_t j = j0; j < j0 + count; ++j) {
    for (int64_t e = 0; e < E; e += 16) __builtin_prefetch(k + j * k_ld + e);
    for (int64_t d = 0; d < Ev; d += 16) __builtin_prefetch(v + j * v_ld + d);
  }
}

// |count| values to float32 (a row of a bf16 block).
template <typename T>
inline void to_f32_row(const T* src, int64_t step, int64_t count, float* dst) {
  if (step == 1) {
    for (int64_t e = 0; e < count; ++e) dst[e] = to_f32(src[e]);
  } else {
    for (int64_t e = 0; e < count; ++e) dst[e] = to_f32(src[e * step]);
  }
}

}  // namespace detail

// Attention with an online softmax, tiled as [Note: attention tiles]
// describes. |mask| (data nullptr: none) is broadcast through its strides
// over [batch, heads, q_len, kv_len]; a bool mask keeps true positions
// (false adds -inf), any other mask is added to the scaled scores. |lse|
// (nullable) receives logsumexp [batch, heads, q_len] in float32 (-inf for
// a fully masked row, whose output is 0).
template <typename T, typename M>
int32_t sdpa(const KernelContext& ctx, const SdpaShape& p, Tensor4<T> q, Tensor4<T> k, Tensor4<T> v,
             Tensor4<M> mask, T* out, float* lse) {
  using detail::kSdpaKeys;
  using detail::kSdpaRows;
  if (p.kv_heads <= 0 || p.heads % p.kv_heads != 0) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                "scaled_dot_product_attention: %lld query heads are not a multiple of %lld "
                "key/value heads",
                static_cast<long long>(p.heads), static_cast<long long>(p.kv_heads));
  }
  if (p.batch <= 0 || p.heads <= 0 || p.q_len <= 0) return AOTC_ABI_OK;
  constexpr bool kFloat = std::is_same<T, float>::value;
  const int64_t E = p.head_dim;
  const int64_t Ev = p.v_dim;
  const int64_t group = p.heads / p.kv_heads;
  const int64_t q_tiles = (p.q_len + kSdpaRows - 1) / kSdpaRows;
  // Causal: a task takes tiles t and q_tiles-1-t, so tasks cost the same.
  const int64_t per_head = p.causal ? (q_tiles + 1) / 2 : q_tiles;
  const int64_t units = p.batch * p.heads * per_head;
  // Per chunk: Q^T, S^T, O^T, float K and V blocks (bf16 only), row stats.
  const int64_t blocks = kFloat ? 0 : kSdpaKeys * (E + Ev);
  const int64_t scratch = kSdpaRows * (E + kSdpaKeys + Ev + 3) + blocks;
  const int64_t keys_per_unit = p.causal ? std::min(p.kv_len, p.q_len) : p.kv_len;
  const int64_t grain = detail::grain_for(
      kSdpaRows * std::max<int64_t>(keys_per_unit, 1) * (E + Ev), int64_t{1} << 18);
  detail::ChunkError alloc_error;

  parallel_for(ctx, 0, units, grain, [&](int64_t begin, int64_t end) {
    detail::Scratch buffer;
    if (!buffer.allocate(scratch)) {
      alloc_error.set();
      return;
    }
    float* qt = buffer.data();               // [E][R]
    float* st = qt + kSdpaRows * E;          // [kSdpaKeys][R]
    float* ot = st + kSdpaRows * kSdpaKeys;  // [Ev][R]
    float* row_max = ot + kSdpaRows * Ev;    // [R]
    float* row_sum = row_max + kSdpaRows;    // [R]
    float* resc = row_sum + kSdpaRows;       // [R]
    float* kf = resc + kSdpaRows;            // [kSdpaKeys][E] (bf16)
    float* vf = kf + kSdpaKeys * E;          // [kSdpaKeys][Ev] (bf16)

    // One tile: rows [i0, i0 + rows) of (bb, h).
    auto run_tile = [&](int64_t bb, int64_t h, int64_t tile) {
      const int64_t hk = h / group;
      const int64_t i0 = tile * kSdpaRows;
      const int64_t rows = std::min(kSdpaRows, p.q_len - i0);
      const int64_t R = (rows + 7) / 8 * 8;
      const T* qbase = q.data + bb * q.s[0] + h * q.s[1] + i0 * q.s[2];
      const T* kbase = k.data + bb * k.s[0] + hk * k.s[1];
      const T* vbase = v.data + bb * v.s[0] + hk * v.s[1];
      const M* mbase = mask.data ? mask.data + bb * mask.s[0] + h * mask.s[1] : nullptr;
      detail::sdpa_pack_q(qbase, q.s[2], q.s[3], rows, E, R, qt);
      std::fill(row_max, row_max + R, -detail::kInf);
      std::fill(row_sum, row_sum + R, 0.0f);
      const int64_t kv_end = p.causal ? std::min(p.kv_len, i0 + rows) : p.kv_len;
      if (kv_end == 0) std::fill(ot, ot + Ev * R, 0.0f);  // no keys: rows of 0
      for (int64_t j0 = 0; j0 < kv_end; j0 += kSdpaKeys) {
        const int64_t nk = std::min(kSdpaKeys, kv_end - j0);
        // K and V as float with their strides: in place, or this block converted.
        const float *ka, *va;
        int64_t ka_j, ka_e, va_j, va_d;
        if constexpr (kFloat) {
          // A tile of a few rows (decode) computes too little per block to hide
          // the loads of the next one: prefetch it (a quarter off decode time).
          if (R <= 8)
            detail::sdpa_prefetch(kbase, k.s[2], vbase, v.s[2], j0 + kSdpaKeys,
                                  std::min(kSdpaKeys, kv_end - j0 - kSdpaKeys), E, Ev);
          ka = kbase + j0 * k.s[2];
          ka_j = k.s[2];
          ka_e = k.s[3];
          va = vbase + j0 * v.s[2];
          va_j = v.s[2];
          va_d = v.s[3];
        } else {
          for (int64_t jj = 0; jj < nk; ++jj) {
            detail::to_f32_row(kbase + (j0 + jj) * k.s[2], k.s[3], E, kf + jj * E);
            detail::to_f32_row(vbase + (j0 + jj) * v.s[2], v.s[3], Ev, vf + jj * Ev);
          }
          ka = kf;
          ka_j = E;
          ka_e = 1;
          va = vf;
          va_j = Ev;
          va_d = 1;
        }
        // Rows go in groups of 16 (a last one of 8). Keys of this block that
        // the group from row r sees: causal rows stop at their diagonal (keys
        // past it are dropped in sdpa_softmax, never read).
        auto keys_for = [&](int64_t r) {
          return p.causal ? std::min(nk, i0 + r + std::min<int64_t>(16, R - r) - j0) : nk;
        };
        // S^T[jj][r] = scale * k_jj . q_r, summed over e in order.
        for (int64_t r = 0; r < R; r += 16) {
          detail::sdpa_group(R - r, keys_for(r), E, ka, ka_j, ka_e, qt + r, R, st + r, R, nullptr,
                             p.scale);
        }
        if (mbase) {
          detail::sdpa_add_mask(st, R, rows, nk, mbase + i0 * mask.s[2] + j0 * mask.s[3], mask.s[2],
                                mask.s[3]);
        }
        detail::sdpa_softmax(st, nk, R, i0, j0, p.causal, row_max, row_sum, resc);
        // O^T[d][r] = resc[r] * O^T[d][r] + sum_jj v_jj[d] * P^T[jj][r]; a row
        // group with no keys here keeps its max, so resc is 1 and it is
        // skipped. The first block starts O^T (every group has keys there).
        for (int64_t r = 0; r < R; r += 16) {
          const int64_t kc = keys_for(r);
          if (kc > 0) {
            detail::sdpa_group(R - r, Ev, kc, va, va_d, va_j, st + r, R, ot + r, R,
                               j0 == 0 ? nullptr : resc + r, 1.0f);
          }
        }
      }
      detail::sdpa_store_rows(ot, R, rows, Ev, row_sum,
                              out + ((bb * p.heads + h) * p.q_len + i0) * Ev);
      if (lse) {
        float* lrow = lse + (bb * p.heads + h) * p.q_len + i0;
        for (int64_t r = 0; r < rows; ++r) lrow[r] = row_max[r] + std::log(row_sum[r]);
      }
    };

    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t t = unit % per_head;
      const int64_t bh = unit / per_head;
      run_tile(bh / p.heads, bh % p.heads, t);
      if (p.causal && q_tiles - 1 - t != t) run_tile(bh / p.heads, bh % p.heads, q_tiles - 1 - t);
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
