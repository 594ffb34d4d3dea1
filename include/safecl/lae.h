/* lae.h: the two computations of LAE (docs/methods.md l) that its tests check on their own
 * vectors (docs/methods.md o.7); the method itself is learn_lae_ops in the registry. */
#ifndef SAFECL_LAE_H
#define SAFECL_LAE_H

#include <stdint.h>

/* The offline expert's update after an optimizer step (l.3): off <- decay off + (1 - decay) on
 * over n floats, as torch computes it (two float products, then their sum). With a constant on,
 * n steps give off_n = on + decay^n (off_0 - on). */
void learn_lae_ema(float *off, const float *on, int64_t n, double decay);

/* The ensemble's prediction (l.5): pred[i] = argmax over classes [0, K) of
 * max(softmax(on[i, :K]), softmax(off[i, :K])), rows of width C, ties to the lower class; off
 * NULL: the online expert alone. */
void learn_lae_ensemble(int32_t *pred, const float *on, const float *off, int64_t n, int64_t C,
                        int64_t K);

#endif /* SAFECL_LAE_H */
