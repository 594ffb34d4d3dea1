/* rng.c: the counter-based generator (Philox4x32-10) and NumPy's legacy MT19937 permutation.
 *
 * Philox is used for every random draw made during training: a draw is a pure function of
 * (seed, stream, epoch, index, k), which is what makes a trial's numbers independent of how
 * samples are spread over ranks and batches. MT19937 is kept only to reproduce the class orders
 * of the reference toolboxes bit for bit; nothing else should draw from it. */
#include "safecl/core.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void scl_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void scl_rng_init(scl_rng *rng, uint64_t seed, uint32_t stream, uint32_t epoch, uint32_t index) {
  rng->key[0] = (uint32_t)seed;
  rng->key[1] = (uint32_t)(seed >> 32);
  rng->counter[0] = 0;
  rng->counter[1] = index;
  rng->counter[2] = epoch;
  rng->counter[3] = stream;
  rng->pos = 4;
}

uint32_t scl_rng_u32(scl_rng *rng) {
  if (rng->pos >= 4) {
    scl_philox4x32_10(rng->counter, rng->key, rng->block);
    rng->counter[0]++;
    rng->pos = 0;
  }
  return rng->block[rng->pos++];
}

double scl_rng_uniform(scl_rng *rng) {
  uint32_t a = scl_rng_u32(rng) >> 5, b = scl_rng_u32(rng) >> 6;
  return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

float scl_rng_uniformf(scl_rng *rng) {
  return (float)(scl_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

double scl_rng_normal(scl_rng *rng) {
  /* Box-Muller with u1 in (0, 1] so that log never sees 0; one normal per call keeps the draw
   * count per value fixed (2 uniforms), which keeps streams easy to reason about. */
  double u1 = 1.0 - scl_rng_uniform(rng);
  double u2 = scl_rng_uniform(rng);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

uint32_t scl_rng_below(scl_rng *rng, uint32_t bound) {
  uint64_t m = (uint64_t)scl_rng_u32(rng) * bound;
  uint32_t low = (uint32_t)m;
  if (low < bound) {
    uint32_t threshold = (uint32_t)(-bound) % bound;
    while (low < threshold) {
      m = (uint64_t)scl_rng_u32(rng) * bound;
      low = (uint32_t)m;
    }
  }
  return (uint32_t)(m >> 32);
}

scl_err scl_rng_permutation(uint64_t seed, uint32_t stream, uint32_t epoch, int64_t n,
                            int64_t *perm) {
  SCL_CHECK(n >= 0 && n <= (int64_t)UINT32_MAX, SCL_ERR_ARG, "permutation of %lld elements",
            (long long)n);
  scl_rng r;
  scl_rng_init(&r, seed, stream, epoch, 0);
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t k = n - 1; k >= 1; k--) {
    int64_t j = scl_rng_below(&r, (uint32_t)(k + 1));
    int64_t t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
  }
  return SCL_OK;
}

/* ---- MT19937 (Matsumoto & Nishimura), as NumPy's legacy RandomState uses it ---- */

void scl_mt19937_seed(scl_mt19937 *m, uint32_t seed) {
  m->mt[0] = seed;
  for (int i = 1; i < 624; i++)
    m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
  m->mti = 624;
}

static void mt_generate(scl_mt19937 *m) {
  static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
  int k;
  uint32_t y;
  for (k = 0; k < 624 - 397; k++) {
    y = (m->mt[k] & 0x80000000u) | (m->mt[k + 1] & 0x7fffffffu);
    m->mt[k] = m->mt[k + 397] ^ (y >> 1) ^ mag01[y & 1u];
  }
  for (; k < 623; k++) {
    y = (m->mt[k] & 0x80000000u) | (m->mt[k + 1] & 0x7fffffffu);
    m->mt[k] = m->mt[k + (397 - 624)] ^ (y >> 1) ^ mag01[y & 1u];
  }
  y = (m->mt[623] & 0x80000000u) | (m->mt[0] & 0x7fffffffu);
  m->mt[623] = m->mt[396] ^ (y >> 1) ^ mag01[y & 1u];
  m->mti = 0;
}

uint32_t scl_mt19937_u32(scl_mt19937 *m) {
  if (m->mti >= 624) mt_generate(m);
  uint32_t y = m->mt[m->mti++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

scl_err scl_np_permutation(uint32_t seed, int64_t n, int64_t *order) {
  SCL_CHECK(n >= 0 && n <= (int64_t)UINT32_MAX, SCL_ERR_ARG, "permutation size %lld out of range",
            (long long)n);
  scl_mt19937 m;
  scl_mt19937_seed(&m, seed);
  for (int64_t i = 0; i < n; i++) order[i] = i;
  for (int64_t i = n - 1; i >= 1; i--) {
    /* NumPy's masked rejection sampling of j in [0, i]. */
    uint32_t max = (uint32_t)i, mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    uint32_t v;
    while ((v = scl_mt19937_u32(&m) & mask) > max) {
    }
    int64_t t = order[i];
    order[i] = order[v];
    order[v] = t;
  }
  return SCL_OK;
}
