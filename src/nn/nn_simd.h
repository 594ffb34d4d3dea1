/* nn_simd.h: the compiler hints the vectorised loops of src/nn rely on, and the polynomial
 * e^x and erf they share (private).
 *
 * NN_KERNEL marks the entry points of the hot element-wise and reduction loops, NN_WIDE the
 * static helpers they inline. The portable build (SAFECL_DISPATCH, the default; the baseline is
 * x86-64-v3, README "Build") compiles every NN_KERNEL function twice with GCC's target_clones,
 * for x86-64-v4 (AVX-512) and for the baseline (AVX2 + FMA); glibc's ifunc picks one clone per
 * function when the process starts, from the CPU's features, so the choice is fixed for the
 * life of the process (docs/conventions.md, "Runtime dispatch"). The helpers are always inlined
 * there, so that each clone compiles them for its own ISA (a helper left out of line would be
 * compiled once, for the baseline). With -DSAFECL_NATIVE=ON
 * both macros ask GCC for 512-bit vectors on an AVX-512 build machine: with -march=native on an
 * AVX-512 core GCC prefers 256-bit ones, and the element-wise polynomial loops (exp, erf) run
 * ~20% faster at 512 (the x86-64-v4 clone gets 512-bit vectors from generic tuning).
 * NN_MADD is a*b + c with one rounding on FMA hardware: in ISO C mode (-std=c11) GCC does not
 * contract a*b + c by itself, and polynomial evaluation is nothing but that. Both clones of the
 * portable build have FMA, so they evaluate the same roundings in the same order. Everything
 * degrades to plain C elsewhere. */
#ifndef SAFECL_NN_SIMD_H
#define SAFECL_NN_SIMD_H

#include <math.h>

#if defined(SAFECL_DISPATCH) && defined(__GNUC__) && !defined(__clang__)
#define NN_KERNEL __attribute__((target_clones("arch=x86-64-v4", "default")))
#define NN_WIDE __attribute__((always_inline))
#elif defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#define NN_KERNEL __attribute__((target("prefer-vector-width=512")))
#define NN_WIDE NN_KERNEL
#else
#define NN_KERNEL
#define NN_WIDE
#endif

#if defined(__FMA__)
#define NN_MADD(a, b, c) fmaf((a), (b), (c))
#else
#define NN_MADD(a, b, c) ((a) * (b) + (c))
#endif

/* The vectorisable e^x and erf shared by the forward and backward kernels (one copy). */
#include <stdint.h>
#include <string.h>

/* e^x for x in [-87, 88]; inputs outside are clamped (softmax only feeds x <= 0). */
NN_WIDE static inline float exp_poly(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  /* Round x*log2(e) to the nearest integer with the 1.5*2^23 trick (vectorises, unlike
   * lrintf), then reduce by k*ln2 in two parts to keep r exact. */
  float k = NN_MADD(x, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
  float r = NN_MADD(k, 2.12194440e-4f, NN_MADD(k, -0.693359375f, x));
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = NN_MADD(p, r, 1.3981999507e-3f);
  p = NN_MADD(p, r, 8.3334519073e-3f);
  p = NN_MADD(p, r, 4.1665795894e-2f);
  p = NN_MADD(p, r, 1.6666665459e-1f);
  p = NN_MADD(p, r, 5.0000001201e-1f);
  p = NN_MADD(p, z, r) + 1.0f;
  int32_t bits = ((int32_t)k + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* erf(x) as an odd rational function of x, clamped at |x| = 4 where erf is 1 to float
 * precision (the approximation used by Eigen and XLA for float). */
NN_WIDE static inline float erf_poly(float x) {
  x = x < -4.0f ? -4.0f : x;
  x = x > 4.0f ? 4.0f : x;
  float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = NN_MADD(p, x2, 2.77068142495902e-08f);
  p = NN_MADD(p, x2, -2.10102402082508e-06f);
  p = NN_MADD(p, x2, -5.69250639462346e-05f);
  p = NN_MADD(p, x2, -7.34990630326855e-04f);
  p = NN_MADD(p, x2, -2.95459980854025e-03f);
  p = NN_MADD(p, x2, -1.60960333262415e-02f);
  float q = -1.45660718464996e-05f;
  q = NN_MADD(q, x2, -2.13374055278905e-04f);
  q = NN_MADD(q, x2, -1.68282697438203e-03f);
  q = NN_MADD(q, x2, -7.37332916720468e-03f);
  q = NN_MADD(q, x2, -1.42647390514189e-02f);
  return x * p / q;
}

#endif /* SAFECL_NN_SIMD_H */
