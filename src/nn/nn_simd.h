/* nn_simd.h: the two compiler hints the vectorised loops of src/nn rely on (private).
 *
 * NN_WIDE asks GCC for 512-bit vectors in a function: with -march=native on an AVX-512 core GCC
 * prefers 256-bit ones, and the element-wise polynomial loops (exp, erf) run ~20% faster at 512.
 * NN_MADD is a*b + c with one rounding on FMA hardware: in ISO C mode (-std=c11) GCC does not
 * contract a*b + c by itself, and polynomial evaluation is nothing but that. Both degrade to
 * plain C elsewhere. */
#ifndef SAFECL_NN_SIMD_H
#define SAFECL_NN_SIMD_H

#include <math.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#define NN_WIDE __attribute__((target("prefer-vector-width=512")))
#else
#define NN_WIDE
#endif

#if defined(__FMA__)
#define NN_MADD(a, b, c) fmaf((a), (b), (c))
#else
#define NN_MADD(a, b, c) ((a) * (b) + (c))
#endif

#endif /* SAFECL_NN_SIMD_H */
