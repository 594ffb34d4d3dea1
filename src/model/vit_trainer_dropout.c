/* vit_trainer_dropout.c: the adapter dropout masks of a training forward, per sample.
 *
 * The mask of sample `index` at block `layer` of forward pass `pass` is drawn exactly as
 * learn_dropout_mask (src/learn/dropout.c) draws it for site = pass * 1000 + layer: the Philox
 * stream (seed, SCL_STREAM_DROPOUT, epoch = step, index), starting at block site << 20, one
 * uniform float per unit, kept when >= p. It is repeated here rather than called because model/
 * must not depend on learn/; tests/train checks the two agree bit for bit. The mask is thus a
 * function of the sample, never of its batch position, batch size or rank. */
#include "vit_trainer_internal.h"

#define DROPOUT_SITE_SHIFT 20 /* as src/learn/dropout.c: 2^20 Philox blocks per site */
#define DROPOUT_PASS_SITES 1000u

void vit_trainer_dropout_mask(uint8_t *mask, int64_t n, float p, uint64_t seed, uint32_t step,
                              uint32_t pass, int64_t index, int64_t layer) {
  const uint32_t site = pass * DROPOUT_PASS_SITES + (uint32_t)layer;
  scl_rng rng;
  scl_rng_init(&rng, seed, SCL_STREAM_DROPOUT, step, (uint32_t)index);
  rng.counter[0] = site << DROPOUT_SITE_SHIFT;
  /* scl_rng_uniformf's draws four at a time: word k of Philox block counter[0] + k / 4,
   * (word >> 8) * 2^-24, without a call per draw (a ViT-B batch of 16 draws 2.4 million). */
  for (int64_t i = 0; i < n; i += 4) {
    uint32_t w[4];
    scl_philox4x32_10(rng.counter, rng.key, w);
    rng.counter[0]++;
    for (int k = 0; k < 4 && i + k < n; k++)
      mask[i + k] = (float)(w[k] >> 8) * (1.0f / 16777216.0f) >= p ? 1 : 0;
  }
}

void tr_dropout_mask(uint8_t *mask, int64_t n, float p, const vit_dropout_key *key, int64_t b,
                     int64_t layer) {
  vit_trainer_dropout_mask(mask, n, p, key->seed, key->step, key->pass, key->index[b], layer);
}
