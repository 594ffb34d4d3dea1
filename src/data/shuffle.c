/* shuffle.c: the per-epoch sample order, a permutation that is a pure function of (seed, epoch).
 *
 * Fisher-Yates over the Philox stream (seed, SCL_STREAM_SHUFFLE, epoch, 0), with Lemire's
 * multiply-shift bounded integers (rejection makes them exactly uniform, and the rejection is
 * rare: probability below (k+1) / 2^32 per draw). Every rank computes the whole order, O(n) words
 * per epoch, rather than communicating it: a few milliseconds for a million samples, and no
 * collective. Deliberately not torch's RandomSampler order: that comes from torch's own
 * generator and cannot be matched by a counter-based stream, and it does not need to be
 * (METHOD.md a.2). Sharding the order among ranks and batches belongs to the loader. */
#include "safecl/augment.h"

/* Uniform integer in [0, range), range >= 1 (Lemire, "Fast Random Integer Generation in an
 * Interval", ACM TOMACS 2019). */
static uint32_t bounded_u32(scl_rng *rng, uint32_t range) {
  uint64_t m = (uint64_t)scl_rng_u32(rng) * range;
  uint32_t low = (uint32_t)m;
  if (low < range) {
    uint32_t threshold = (0u - range) % range; /* 2^32 mod range */
    while (low < threshold) {
      m = (uint64_t)scl_rng_u32(rng) * range;
      low = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

scl_err data_shuffle(uint64_t seed, uint32_t epoch, int64_t n, int64_t *perm) {
  if (n < 0 || n > (int64_t)UINT32_MAX)
    return SCL_ERROR(SCL_ERR_ARG, "shuffle of %lld samples: outside [0, 2^32 - 1]", (long long)n);
  if (n > 0 && !perm)
    return SCL_ERROR(SCL_ERR_ARG, "shuffle of %lld samples: no output", (long long)n);
  scl_rng rng;
  scl_rng_init(&rng, seed, SCL_STREAM_SHUFFLE, epoch, 0);
  for (int64_t k = 0; k < n; k++) perm[k] = k;
  for (int64_t k = n - 1; k >= 1; k--) {
    int64_t j = bounded_u32(&rng, (uint32_t)(k + 1));
    int64_t t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
  }
  return SCL_OK;
}
