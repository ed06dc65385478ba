// aotc_cpu_gemm.h: GEMM (mm, addmm, bmm) for the CPU backend: a
// register-blocked micro-kernel ([Note: GEMM micro-kernel]). Conventions
// (element types, strides, numerics, return codes) are those of
// aotc_cpu_kernels.h, which includes
// this header at its end: include that one (it orders the families).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

// [Note: GEMM micro-kernel] Two paths, by the number of rows M of A. Both
// keep B in its element type and widen a bfloat16 B in registers
// (load8_f32: 8 x uint16 zero-extended to 32 bits, shifted left 16: exact),
// so it is read at half the bytes of float and never converted as a whole;
// A is converted to float as it is packed. Sums are float32, fused (FMA),
// over k in order, and rounded once on store: results do not depend on the
// thread count, and a bfloat16 GEMM equals the float32 GEMM of the same
// values rounded once (tests/test_extern_kernels.py checks it).
// - Tiled: C in kGemmMR x kGemmNR micro-tiles held in registers (6 x 16
//   floats: twelve 8-float vectors, with two B vectors and one broadcast A
//   value: 15 of AVX2's 16 registers). A task computes a kGemmMC x kGemmNC
//   float tile of C on its stack; A is packed per task into k-major panels
//   of kGemmMR rows (zero-padded rows); K is blocked by kGemmKC so the A
//   block stays in L2 and a B panel in L1. B with unit column stride is
//   read in place (edge columns, N % 16, through a zero-padded float copy),
//   except that rows a multiple of kGemmAliasingStride bytes apart share
//   cache sets, so a panel read in place evicts itself: then each task packs
//   B per kGemmKC step into zero-padded 16-column panels (float32 1024^3:
//   27 ms of one core in place, 23 packed). A strided B (a transposed
//   weight) is packed once per call (copy_rows).
// - Few rows (M <= kGemmRowsFew, or <= kGemmRowsMax when N >=
//   kGemmRowsWide: GEMVs, decode-time linear layers) is bound by reading B,
//   so B streams: a chunk takes runs of up to kGemmRowsCols columns and
//   walks K kGemmRowsKB rows at a time (8 sequential 4 KB streams of
//   bfloat16 that stay in L1), each 16-column strip of a group of up to
//   kGemmMR rows keeping its sums in registers over those rows (gemm_rows).
//   A strided B is copied per run, kGemmRowsCopyKB rows at a time, through
//   8 x 8 register transposes (transpose8). The path replaced 1 KB row
//   segments with the sums in memory (float B at ~10 GB/s on one core, and
//   a whole-matrix float copy of a bfloat16 B first).
// Figures, one core's CPU time (ms), before -> after, eager on AVX-512
// (with AVX512-BF16 for bfloat16), B contiguous / transposed:
//   float32  1 x 4096^2: 6.3 -> 3.6 (eager 2.8) / 130 -> 7.2 (eager 2.8);
//            16 x 4096^2: 14.5 -> 6.3 (eager 9.4); 1024^3: 26 -> 23 (21)
//   bfloat16 1 x 4096^2: 38 -> 2.3 (eager 4.5) / 122 -> 4.6 (eager 1.9);
//            16 x 4096^2: 45 -> 6.7 (eager 5.7); 1024^3: 25 -> 18 (4.7).
// Large GEMMs run at AVX2's float FMA peak (~115 GFLOP/s a core here);
// eager's bfloat16 vdpbf16ps does 4x the multiply-adds per instruction, so
// ~4x eager's time is the floor for large bfloat16 GEMMs without AVX-512.
constexpr int64_t kGemmMR = 6;
constexpr int64_t kGemmNR = 16;
constexpr int64_t kGemmMC = 8 * kGemmMR;   // rows per task
constexpr int64_t kGemmNC = 16 * kGemmNR;  // columns per task
constexpr int64_t kGemmKC = 256;           // depth per A block

#if defined(__AVX2__) && defined(__FMA__)
// Eight consecutive elements as floats (bf16: exact widening).
inline __m256 load8_f32(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8_f32(const bf16* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
#endif

// c[r * ldc + j] (+)= sum_{k < kc} a[k * MR + r] * b[k * ldb + j], r < MR, j < NR.
template <typename TB>
inline void gemm_micro_impl(int64_t kc, const float* a, const TB* b, int64_t ldb, float* c,
                            int64_t ldc, bool accumulate) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc[kGemmMR][2];
#pragma GCC unroll 6
  for (int r = 0; r < kGemmMR; ++r) {
    acc[r][0] = accumulate ? _mm256_loadu_ps(c + r * ldc) : _mm256_setzero_ps();
    acc[r][1] = accumulate ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = load8_f32(b + k * ldb);
    const __m256 b1 = load8_f32(b + k * ldb + 8);
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
      for (int j = 0; j < kGemmNR; ++j)
        acc[r][j] = fused_madd(ar, to_f32(b[k * ldb + j]), acc[r][j]);
    }
  for (int r = 0; r < kGemmMR; ++r)
    for (int j = 0; j < kGemmNR; ++j) c[r * ldc + j] = acc[r][j];
#endif
}

// The micro-kernel on a float B (also called by the convolutions) and on a
// bfloat16 B.
inline void gemm_micro(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                       int64_t ldc, bool accumulate) {
  gemm_micro_impl(kc, a, b, ldb, c, ldc, accumulate);
}
inline void gemm_micro(int64_t kc, const float* a, const bf16* b, int64_t ldb, float* c,
                       int64_t ldc, bool accumulate) {
  gemm_micro_impl(kc, a, b, ldb, c, ldc, accumulate);
}

// [Note: AVX-512 micro-kernel] Packages target x86-64-v3 (AVX2) by default
// so that they run anywhere, but a core with AVX-512 (and a full-width FMA
// datapath, as this machine's) does twice the multiply-adds per
// instruction: eager's oneDNN uses it. So two adjacent 16-column panels of B
// can be computed in one 6 x 32 tile of zmm accumulators, dispatched at run
// time (cpuid, checked once) from code compiled for the package's ISA; the
// function itself is compiled for AVX-512F by a target attribute.
// Each output's sum is still one fused multiply-add per k, in order: the
// results are bit-identical to the AVX2 kernel's, so they do not depend on
// the machine either. Defining AOTC_NO_AVX512 compiles the dispatch out (the
// tests build both).
#if defined(__AVX2__) && defined(__FMA__) && !defined(AOTC_NO_AVX512)
#define AOTC_GEMM_AVX512 1
#if defined(__AVX512F__)
#define AOTC_AVX512_TARGET
#else
#define AOTC_AVX512_TARGET __attribute__((target("avx512f")))
#endif

AOTC_AVX512_TARGET inline __m512 load16_f32(const float* p) { return _mm512_loadu_ps(p); }
AOTC_AVX512_TARGET inline __m512 load16_f32(const bf16* p) {
  // (maskz forms: the plain ones trip g++ 12's -Wmaybe-uninitialized inside
  // its own intrinsics header)
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xFFFF, h);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, wide, 16));
}

// gemm_micro_impl over 32 columns (two panels) with zmm registers.
template <typename TB>
AOTC_AVX512_TARGET void gemm_micro_wide(int64_t kc, const float* a, const TB* b, int64_t ldb,
                                        float* c, int64_t ldc, bool accumulate) {
  __m512 acc[kGemmMR][2];
#pragma GCC unroll 6
  for (int r = 0; r < kGemmMR; ++r) {
    acc[r][0] = accumulate ? _mm512_loadu_ps(c + r * ldc) : _mm512_setzero_ps();
    acc[r][1] = accumulate ? _mm512_loadu_ps(c + r * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = load16_f32(b + k * ldb);
    const __m512 b1 = load16_f32(b + k * ldb + 16);
#pragma GCC unroll 6
    for (int r = 0; r < kGemmMR; ++r) {
      const __m512 ar = _mm512_set1_ps(a[k * kGemmMR + r]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kGemmMR; ++r) {
    _mm512_storeu_ps(c + r * ldc, acc[r][0]);
    _mm512_storeu_ps(c + r * ldc + 16, acc[r][1]);
  }
}

// Whether this CPU (and OS) runs AVX-512F; asked once.
inline bool cpu_has_avx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return has;
}
#endif

// gemm_micro on two adjacent panels: columns [0, 32) of b and c.
template <typename TB>
inline void gemm_micro2(int64_t kc, const float* a, const TB* b, int64_t ldb, float* c, int64_t ldc,
                        bool accumulate) {
#ifdef AOTC_GEMM_AVX512
  if (cpu_has_avx512()) {
    gemm_micro_wide(kc, a, b, ldb, c, ldc, accumulate);
    return;
  }
#endif
  gemm_micro(kc, a, b, ldb, c, ldc, accumulate);
  gemm_micro(kc, a, b + kGemmNR, ldb, c + kGemmNR, ldc, accumulate);
}

// B's block [kc x cols] (row k at b + k * ldb, unit column stride) as
// panel pairs of 32 columns (gemm_micro2's width): pair p holds columns
// [32p, 32p + 32) as kc rows of 32, at dst + p * kc * 32; the last pair is
// zero-padded.
constexpr int64_t kGemmPairNR = 2 * kGemmNR;
template <typename T>
inline void pack_b_block(const T* b, int64_t ldb, int64_t kc, int64_t cols, T* dst) {
  const int64_t full = cols / kGemmPairNR;
  for (int64_t k = 0; k < kc; ++k) {
    const T* src = b + k * ldb;
    for (int64_t p = 0; p < full; ++p)
      std::memcpy(dst + (p * kc + k) * kGemmPairNR, src + p * kGemmPairNR, kGemmPairNR * sizeof(T));
  }
  if (full * kGemmPairNR < cols) {
    T* out = dst + full * kc * kGemmPairNR;
    const T* src = b + full * kGemmPairNR;
    const int64_t n = cols - full * kGemmPairNR;
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = 0; j < kGemmPairNR; ++j)
        out[k * kGemmPairNR + j] = j < n ? src[k * ldb + j] : from_f32<T>(0.0f);
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// An 8 x 8 transpose in registers: v[k] becomes column k of the rows v[0..7]
// (shared with attention's tiles).
inline void transpose8(__m256 (&v)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// An 8 x 8 transpose: dst[k * ldd + j] = src[j * lds + k], j, k < 8.
inline void transpose8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 v[8];
  for (int j = 0; j < 8; ++j) v[j] = _mm256_loadu_ps(src + j * lds);
  transpose8(v);
  for (int k = 0; k < 8; ++k) _mm256_storeu_ps(dst + k * ldd, v[k]);
}
inline void transpose8(const bf16* src, int64_t lds, bf16* dst, int64_t ldd) {
  __m128i r[8], t[8];
  for (int j = 0; j < 8; ++j)
    r[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j * lds));
  for (int j = 0; j < 8; j += 2) {
    t[j / 2] = _mm_unpacklo_epi16(r[j], r[j + 1]);      // k 0-3 of rows j, j + 1
    t[j / 2 + 4] = _mm_unpackhi_epi16(r[j], r[j + 1]);  // k 4-7
  }
  for (int h = 0; h < 8; h += 4) {                      // h: k 0-3, then 4-7
    r[h] = _mm_unpacklo_epi32(t[h], t[h + 1]);          // k h, h + 1 of rows 0-3
    r[h + 1] = _mm_unpackhi_epi32(t[h], t[h + 1]);      // k h + 2, h + 3 of rows 0-3
    r[h + 2] = _mm_unpacklo_epi32(t[h + 2], t[h + 3]);  // k h, h + 1 of rows 4-7
    r[h + 3] = _mm_unpackhi_epi32(t[h + 2], t[h + 3]);
  }
  for (int h = 0; h < 8; h += 4) {
    for (int q = 0; q < 2; ++q) {
      __m128i* d = reinterpret_cast<__m128i*>(dst + (h + 2 * q) * ldd);
      _mm_storeu_si128(d, _mm_unpacklo_epi64(r[h + q], r[h + q + 2]));
      d = reinterpret_cast<__m128i*>(dst + (h + 2 * q + 1) * ldd);
      _mm_storeu_si128(d, _mm_unpackhi_epi64(r[h + q], r[h + q + 2]));
    }
  }
}
#endif

// dst[k * ldd + j] = src[k * s0 + j * s1] for k < rows, j < cols. A
// transposed B (s0 == 1: a linear layer's weight) goes through 8 x 8
// register transposes, j-blocks outer so that the source lines are reused
// at once; other strides through a kCopyTile^2 tile on the stack, read and
// written a cache line at a time.
constexpr int64_t kCopyTile = 64;
template <typename T>
inline void copy_rows(const T* src, int64_t s0, int64_t s1, int64_t rows, int64_t cols, T* dst,
                      int64_t ldd) {
#if defined(__AVX2__) && defined(__FMA__)
  if (s0 == 1) {
    const int64_t rows8 = rows / 8 * 8;
    const int64_t cols8 = cols / 8 * 8;
    for (int64_t j0 = 0; j0 < cols8; j0 += 8) {
      for (int64_t k0 = 0; k0 < rows8; k0 += 8)
        transpose8(src + k0 + j0 * s1, s1, dst + k0 * ldd + j0, ldd);
      for (int64_t k = rows8; k < rows; ++k)
        for (int64_t j = j0; j < j0 + 8; ++j) dst[k * ldd + j] = src[k + j * s1];
    }
    for (int64_t k = 0; k < rows; ++k)
      for (int64_t j = cols8; j < cols; ++j) dst[k * ldd + j] = src[k + j * s1];
    return;
  }
#endif
  T tile[kCopyTile][kCopyTile];
  for (int64_t k0 = 0; k0 < rows; k0 += kCopyTile) {
    const int64_t nk = std::min(kCopyTile, rows - k0);
    for (int64_t j0 = 0; j0 < cols; j0 += kCopyTile) {
      const int64_t nj = std::min(kCopyTile, cols - j0);
      for (int64_t j = 0; j < nj; ++j) {
        const T* col = src + k0 * s0 + (j0 + j) * s1;
        if (s0 == 1) {
          std::memcpy(tile[j], col, nk * sizeof(T));
        } else {
          for (int64_t k = 0; k < nk; ++k) tile[j][k] = col[k * s0];
        }
      }
      for (int64_t k = 0; k < nk; ++k) {
        T* row = dst + (k0 + k) * ldd + j0;
        for (int64_t j = 0; j < nj; ++j) row[j] = tile[j][k];
      }
    }
  }
}

// |b| with unit column stride: itself, or packed into |packed| (once per
// batch, or once when shared by every batch) as contiguous [K, N] rows.
template <typename T>
int32_t unit_stride_b(const KernelContext& ctx, int64_t batch, int64_t N, int64_t K,
                      const Matrix<T>& b, Scratch& packed, Matrix<T>* out) {
  *out = b;
  if (b.s1 == 1 || K == 0) return AOTC_ABI_OK;
  const int64_t packed_batches = b.sb == 0 ? 1 : batch;
  const int64_t bytes = packed_batches * K * N * static_cast<int64_t>(sizeof(T));
  if (!packed.allocate((bytes + 3) / 4)) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED, "gemm: cannot allocate %lld bytes to pack B",
                static_cast<long long>(bytes));
  }
  T* dst = reinterpret_cast<T*>(packed.data());
  const int64_t k_tiles = (K + kCopyTile - 1) / kCopyTile;
  parallel_for(ctx, 0, packed_batches * k_tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t bb = unit / k_tiles;
      const int64_t k0 = unit % k_tiles * kCopyTile;
      copy_rows(b.data + bb * b.sb + k0 * b.s0, b.s0, b.s1, std::min(kCopyTile, K - k0), N,
                dst + (bb * K + k0) * N, N);
    }
  });
  *out = Matrix<T>{dst, b.sb == 0 ? 0 : K * N, N, 1};
  return AOTC_ABI_OK;
}

// The few-rows path: a chunk streams runs of up to kGemmRowsCols columns of
// B, kGemmRowsKB rows at a time (4 KB of bfloat16 per row: 8 sequential
// streams, 32 KB, which stay in L1 while every row group sweeps them); each
// chunk has at least kGemmRowsMinCols columns. It takes up to kGemmRowsFew
// rows of A, or up to kGemmRowsMax when B has kGemmRowsWide columns or more
// (narrower, the tiled path reuses B better).
constexpr int64_t kGemmRowsKB = 8;
constexpr int64_t kGemmRowsCopyKB = 64;  // rows of a strided B copied per step
constexpr int64_t kGemmRowsCols = 2048;
constexpr int64_t kGemmRowsMinCols = 256;
constexpr int64_t kGemmRowsFew = 16;
constexpr int64_t kGemmRowsMax = 32;
constexpr int64_t kGemmRowsWide = 1024;
// The tiled path packs B per task when its row stride is a multiple of this
// many bytes: rows that far apart share cache sets, and a B panel read in
// place (kGemmKC rows) would keep evicting itself.
constexpr int64_t kGemmAliasingStride = 4096;

// acc[r * ldacc + j] = fma(a[k * lda + r], b[k * ldb + j], acc[r * ldacc + j])
// for k < kc in order, r < kRows, j < cols.
template <int kRows, typename TB>
inline void gemm_rows(int64_t kc, const float* a, int64_t lda, const TB* b, int64_t ldb,
                      int64_t cols, float* acc, int64_t ldacc) {
  int64_t j = 0;
#if defined(__AVX2__) && defined(__FMA__)
  for (; j + 16 <= cols; j += 16) {
    __m256 c0[kRows], c1[kRows];
    for (int r = 0; r < kRows; ++r) {
      c0[r] = _mm256_loadu_ps(acc + r * ldacc + j);
      c1[r] = _mm256_loadu_ps(acc + r * ldacc + j + 8);
    }
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = load8_f32(b + k * ldb + j);
      const __m256 b1 = load8_f32(b + k * ldb + j + 8);
      for (int r = 0; r < kRows; ++r) {
        const __m256 ar = _mm256_broadcast_ss(a + k * lda + r);
        c0[r] = _mm256_fmadd_ps(ar, b0, c0[r]);
        c1[r] = _mm256_fmadd_ps(ar, b1, c1[r]);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      _mm256_storeu_ps(acc + r * ldacc + j, c0[r]);
      _mm256_storeu_ps(acc + r * ldacc + j + 8, c1[r]);
    }
  }
  for (; j + 8 <= cols; j += 8) {
    __m256 c0[kRows];
    for (int r = 0; r < kRows; ++r) c0[r] = _mm256_loadu_ps(acc + r * ldacc + j);
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = load8_f32(b + k * ldb + j);
      for (int r = 0; r < kRows; ++r)
        c0[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k * lda + r), b0, c0[r]);
    }
    for (int r = 0; r < kRows; ++r) _mm256_storeu_ps(acc + r * ldacc + j, c0[r]);
  }
#endif
  for (; j < cols; ++j) {
    for (int64_t k = 0; k < kc; ++k) {
      const float bv = to_f32(b[k * ldb + j]);
      for (int r = 0; r < kRows; ++r)
        acc[r * ldacc + j] = fused_madd(a[k * lda + r], bv, acc[r * ldacc + j]);
    }
  }
}

// gemm_rows for rows [0, rows) in groups of up to kGemmMR.
template <typename TB>
inline void gemm_rows_all(int64_t rows, int64_t kc, const float* a, const TB* b, int64_t ldb,
                          int64_t cols, float* acc, int64_t ldacc) {
  for (int64_t r0 = 0; r0 < rows; r0 += kGemmMR) {
    const float* ag = a + r0;
    float* cg = acc + r0 * ldacc;
    switch (std::min<int64_t>(kGemmMR, rows - r0)) {
      case 1:
        gemm_rows<1>(kc, ag, rows, b, ldb, cols, cg, ldacc);
        break;
      case 2:
        gemm_rows<2>(kc, ag, rows, b, ldb, cols, cg, ldacc);
        break;
      case 3:
        gemm_rows<3>(kc, ag, rows, b, ldb, cols, cg, ldacc);
        break;
      case 4:
        gemm_rows<4>(kc, ag, rows, b, ldb, cols, cg, ldacc);
        break;
      case 5:
        gemm_rows<5>(kc, ag, rows, b, ldb, cols, cg, ldacc);
        break;
      default:
        gemm_rows<6>(kc, ag, rows, b, ldb, cols, cg, ldacc);
        break;
    }
  }
}

// The few-rows path of gemm() ([Note: GEMM micro-kernel]).
// |store_row(bb, i, j0, cols, acc)| stores float sums.
template <typename T, typename StoreRow>
int32_t gemm_rows_path(const KernelContext& ctx, int64_t batch, int64_t M, int64_t N, int64_t K,
                       const Matrix<T>& a, const Matrix<T>& b, const StoreRow& store_row) {
  // Work units are 16-column strips; a chunk streams its strips in runs of
  // up to kGemmRowsCols columns (one batch at a time), kGemmRowsKB rows of B
  // per step.
  const int64_t strips = (N + kGemmNR - 1) / kGemmNR;
  const int64_t ld = std::min(kGemmRowsCols, strips * kGemmNR);  // of the float sums
  constexpr int64_t kKB = kGemmRowsKB;
  const int64_t grain =
      std::max<int64_t>(kGemmRowsMinCols / kGemmNR,
                        grain_for(M * kGemmNR * std::max<int64_t>(K, 1), int64_t{1} << 18));
  // A strided B (a linear layer's transposed weight) is copied per run,
  // kGemmRowsCopyKB rows at a time, into unit-stride rows.
  const bool copy_b = b.s1 != 1;
  const int64_t ldc = ld + kGemmNR;  // padded: copied rows 2^n bytes apart share cache sets
  const int64_t k_step = copy_b ? kGemmRowsCopyKB : std::max<int64_t>(K, 1);
  ChunkError no_memory;
  parallel_for(ctx, 0, batch * strips, grain, [&](int64_t begin, int64_t end) {
    Scratch acc_scratch, b_scratch;
    const int64_t b_bytes = copy_b ? kGemmRowsCopyKB * ldc * static_cast<int64_t>(sizeof(T)) : 0;
    if (!acc_scratch.allocate(M * ld) || (copy_b && !b_scratch.allocate((b_bytes + 3) / 4))) {
      no_memory.set();
      return;
    }
    float* acc = acc_scratch.data();
    T* bcopy = reinterpret_cast<T*>(b_scratch.data());
    float apack[kKB * kGemmRowsMax];
    for (int64_t unit = begin; unit < end;) {
      const int64_t bb = unit / strips;
      const int64_t first = unit % strips;  // strips [first, last) of batch bb
      const int64_t last = std::min({strips, first + ld / kGemmNR, first + end - unit});
      unit += last - first;
      const int64_t j0 = first * kGemmNR;
      const int64_t cols = std::min(N, last * kGemmNR) - j0;
      const T* arow = a.data + bb * a.sb;
      const T* bpanel = b.data + bb * b.sb + j0 * b.s1;
      for (int64_t r = 0; r < M; ++r) std::fill(acc + r * ld, acc + r * ld + cols, 0.0f);
      for (int64_t ks = 0; ks < K; ks += k_step) {
        const int64_t nks = std::min(k_step, K - ks);
        const T* bk = bpanel + ks * b.s0;
        int64_t ldb = b.s0;
        if (copy_b) {
          copy_rows(bk, b.s0, b.s1, nks, cols, bcopy, ldc);
          bk = bcopy;
          ldb = ldc;
        }
        for (int64_t k0 = 0; k0 < nks; k0 += kKB) {
          const int64_t kc = std::min(kKB, nks - k0);
          for (int64_t k = 0; k < kc; ++k)
            for (int64_t r = 0; r < M; ++r)
              apack[k * M + r] = to_f32(arow[r * a.s0 + (ks + k0 + k) * a.s1]);
          gemm_rows_all(M, kc, apack, bk + k0 * ldb, ldb, cols, acc, ld);
        }
      }
      for (int64_t r = 0; r < M; ++r) store_row(bb, r, j0, cols, acc + r * ld);
    }
  });
  if (no_memory.failed()) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED, "gemm: cannot allocate %lld bytes of scratch",
                static_cast<long long>(M * ld * 4 + (copy_b ? kGemmRowsCopyKB * ldc * 4 : 0)));
  }
  return AOTC_ABI_OK;
}

// The tiled path of gemm() ([Note: GEMM micro-kernel]): a task computes one
// kGemmMC x kGemmNC tile of one batch. B has unit column stride; it is read
// in place, or packed per task and kGemmKC step when its row stride is a
// multiple of kGemmAliasingStride bytes.
template <typename T, typename StoreRow>
int32_t gemm_tiled_path(const KernelContext& ctx, int64_t batch, int64_t M, int64_t N, int64_t K,
                        const Matrix<T>& a, const Matrix<T>& b, const StoreRow& store_row) {
  const int64_t row_blocks = (M + kGemmMC - 1) / kGemmMC;
  const int64_t col_blocks = (N + kGemmNC - 1) / kGemmNC;
  const int64_t grain = grain_for(kGemmMC * kGemmNC * std::max<int64_t>(K, 1), int64_t{1} << 20);
  const bool pack_b = K > 0 && (b.s0 * static_cast<int64_t>(sizeof(T))) % kGemmAliasingStride == 0;
  const int64_t bpack_size =
      std::min(K, kGemmKC) * std::min(kGemmNC, (N + kGemmPairNR - 1) / kGemmPairNR * kGemmPairNR);
  ChunkError no_memory;
  parallel_for(ctx, 0, batch * row_blocks * col_blocks, grain, [&](int64_t begin, int64_t end) {
    alignas(64) float tile[kGemmMC * kGemmNC];
    alignas(64) float apack[kGemmMC * kGemmKC];
    alignas(64) float edge[kGemmKC * kGemmNR];
    Scratch bscratch;
    if (pack_b && !bscratch.allocate((bpack_size * static_cast<int64_t>(sizeof(T)) + 3) / 4)) {
      no_memory.set();
      return;
    }
    T* bpack = reinterpret_cast<T*>(bscratch.data());
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t j0 = (unit % col_blocks) * kGemmNC;
      const int64_t i0 = (unit / col_blocks % row_blocks) * kGemmMC;
      const int64_t bb = unit / col_blocks / row_blocks;
      const int64_t rows = std::min(kGemmMC, M - i0);
      const int64_t cols = std::min(kGemmNC, N - j0);
      const int64_t groups = (rows + kGemmMR - 1) / kGemmMR;
      const T* ablock = a.data + bb * a.sb + i0 * a.s0;
      const T* bblock = b.data + bb * b.sb + j0;
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
        if (pack_b) pack_b_block(bblock + k0 * b.s0, b.s0, kc, cols, bpack);
        for (int64_t jp = 0; jp < cols; jp += kGemmNR) {
          float* ctile = tile + jp;
          if (!pack_b && cols - jp >= 2 * kGemmNR) {  // two full panels at once
            const T* bp = bblock + k0 * b.s0 + jp;
            for (int64_t g = 0; g < groups; ++g)
              gemm_micro2(kc, apack + g * kGemmMR * kGemmKC, bp, b.s0,
                          ctile + g * kGemmMR * kGemmNC, kGemmNC, k0 > 0);
            jp += kGemmNR;
            continue;
          }
          if (pack_b) {                     // (jp is even here: pairs only)
            const T* bp = bpack + jp * kc;  // pair jp / 32, zero-padded
            for (int64_t g = 0; g < groups; ++g)
              gemm_micro2(kc, apack + g * kGemmMR * kGemmKC, bp, kGemmPairNR,
                          ctile + g * kGemmMR * kGemmNC, kGemmNC, k0 > 0);
            jp += kGemmNR;  // the tile is kGemmNC wide: padding columns land there
            continue;
          }
          const T* bp = bblock + k0 * b.s0 + jp;
          if (cols - jp < kGemmNR) {  // edge columns: a zero-padded float copy
            const int64_t n = cols - jp;
            for (int64_t k = 0; k < kc; ++k) {
              for (int64_t j = 0; j < kGemmNR; ++j)
                edge[k * kGemmNR + j] = j < n ? to_f32(bp[k * b.s0 + j]) : 0.0f;
            }
            for (int64_t g = 0; g < groups; ++g)
              gemm_micro(kc, apack + g * kGemmMR * kGemmKC, edge, kGemmNR,
                         ctile + g * kGemmMR * kGemmNC, kGemmNC, k0 > 0);
            continue;
          }
          for (int64_t g = 0; g < groups; ++g)
            gemm_micro(kc, apack + g * kGemmMR * kGemmKC, bp, b.s0, ctile + g * kGemmMR * kGemmNC,
                       kGemmNC, k0 > 0);
        }
      }
      for (int64_t r = 0; r < rows; ++r) store_row(bb, i0 + r, j0, cols, tile + r * kGemmNC);
    }
  });
  if (no_memory.failed()) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED, "gemm: cannot allocate %lld bytes to pack B",
                static_cast<long long>(bpack_size * sizeof(T)));
  }
  return AOTC_ABI_OK;
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
  if (batch <= 0 || M <= 0 || N <= 0) return AOTC_ABI_OK;
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
  if (M <= detail::kGemmRowsFew || (M <= detail::kGemmRowsMax && N >= detail::kGemmRowsWide))
    return detail::gemm_rows_path(ctx, batch, M, N, K, a, b, store_row);
  detail::Scratch packed;
  Matrix<T> bu;
  if (int32_t code = detail::unit_stride_b(ctx, batch, N, K, b, packed, &bu)) return code;
  return detail::gemm_tiled_path(ctx, batch, M, N, K, a, bu, store_row);
}

}  // namespace kernels
}  // namespace aotc_rt
