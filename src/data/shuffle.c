/* shuffle.c: the per-epoch sample order, a permutation that is a pure function of (seed, epoch).
 *
 * Fisher-Yates over the Philox stream (seed, SCL_STREAM_SHUFFLE, epoch, 0) (scl_rng_permutation in
 * core, shared with the other permutations of a trial), with Lemire's
 * multiply-shift bounded integers (rejection makes them exactly uniform, and the rejection is
 * rare: probability below (k+1) / 2^32 per draw). Every rank computes the whole order, O(n) words
 * per epoch, rather than communicating it: a few milliseconds for a million samples, and no
 * collective. Deliberately not torch's RandomSampler order: that comes from torch's own
 * generator and cannot be matched by a counter-based stream, and it does not need to be
 * (docs/methods.md a.2). Sharding the order among ranks and batches belongs to the loader. */
#include "safecl/augment.h"

scl_err data_shuffle(uint64_t seed, uint32_t epoch, int64_t n, int64_t *perm) {
  SCL_CHECK(n >= 0 && n <= (int64_t)UINT32_MAX, SCL_ERR_ARG,
            "shuffle of %lld samples: outside [0, 2^32 - 1]", (long long)n);
  if (n > 0 && !perm)
    return SCL_ERROR(SCL_ERR_ARG, "shuffle of %lld samples: no output", (long long)n);
  /* The core permutation is this algorithm (Lemire bounded draws included); one copy of it. */
  SCL_CALL(scl_rng_permutation(seed, SCL_STREAM_SHUFFLE, epoch, n, perm));
  return SCL_OK;
}
