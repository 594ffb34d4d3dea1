/* isa.c: the instruction set the dispatched kernels of src/nn run with in this process, for
 * `safecl bench` lines and provenance. In the portable build (SAFECL_DISPATCH, the default on
 * x86-64) it is "x86-64-v4" or "x86-64-v3", read from the CPU with the same test the
 * target_clones resolvers of src/nn/nn_simd.h make (libgcc's __builtin_cpu_supports), so it
 * names the clone those kernels run; the CPU does not change during a process, so neither does
 * the answer. A -DSAFECL_NATIVE=ON build answers "native" and other machines "default": there is
 * one code path then. */
#include "safecl/core.h"

#ifndef SAFECL_ISA_BASELINE
#define SAFECL_ISA_BASELINE "default"
#endif

const char *scl_simd_isa(void) {
#if defined(SAFECL_DISPATCH) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("x86-64-v4") ? "x86-64-v4" : "x86-64-v3";
#else
  return SAFECL_ISA_BASELINE;
#endif
}
