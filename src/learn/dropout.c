/* dropout.c: training-mode dropout whose mask is a pure function of (seed, step, sample, site).
 *
 * torch draws one Bernoulli mask for the whole batch from a sequential generator, so a sample's
 * mask depends on its batch position and on the rank that holds it; here each sample's mask comes
 * from the Philox stream (seed, SCL_STREAM_DROPOUT, epoch = step, index = sample index), starting
 * at block site << 20, so data-parallel runs at any rank count drop the same units. The masks
 * therefore do not match torch's bit for bit (nothing could), only its law: keep with probability
 * 1 - p, kept values scaled by 1/(1 - p) computed in fp32 as torch does. The forward stores the
 * 0/1 mask as bytes for the backward. */
#include "safecl/learn.h"

#include <string.h>

#include "safecl/core.h"

/* Blocks of one Philox stream given to one dropout site: 2^20 blocks of 4 draws. */
#define DROPOUT_SITE_SHIFT 20

void learn_dropout_mask(uint8_t *mask, int64_t n, float p, uint64_t seed, uint32_t step,
                        uint32_t index, uint32_t site) {
  scl_rng rng;
  scl_rng_init(&rng, seed, SCL_STREAM_DROPOUT, step, index);
  rng.counter[0] = site << DROPOUT_SITE_SHIFT; /* counter[0] is the block number */
  for (int64_t i = 0; i < n; i++) mask[i] = scl_rng_uniformf(&rng) >= p ? 1 : 0;
}

void learn_dropout_forward(float *y, uint8_t *mask, const float *x, const int64_t *index, int64_t B,
                           int64_t n, float p, uint64_t seed, uint32_t step, uint32_t site) {
  if (p <= 0.0f) {
    if (y != x) memmove(y, x, (size_t)(B * n) * sizeof(float));
    memset(mask, 1, (size_t)(B * n));
    return;
  }
  const float keep_scale = 1.0f / (1.0f - p);
  for (int64_t b = 0; b < B; b++) {
    uint8_t *m = mask + b * n;
    learn_dropout_mask(m, n, p, seed, step, (uint32_t)index[b], site);
    for (int64_t i = 0; i < n; i++) y[b * n + i] = m[i] ? x[b * n + i] * keep_scale : 0.0f;
  }
}

void learn_dropout_backward(float *dx, const float *dy, const uint8_t *mask, int64_t B, int64_t n,
                            float p) {
  const float keep_scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
  for (int64_t i = 0; i < B * n; i++)
    if (mask[i]) dx[i] += dy[i] * keep_scale;
}
