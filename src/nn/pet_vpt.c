/* pet_vpt.c: VPT prompt tokens (docs/methods.md b.4): writing a block's T prompts after the N
 * tokens of every image, and summing their gradient over the batch.
 *
 * The trainer lays every image out as N + T rows from the start, so "append before the block,
 * drop after it" is a copy into the last T rows (deep VPT overwrites them before each block,
 * which is the drop) and no sequence is ever re-packed. The prompt gradient is the sum over
 * images of those rows' gradient at the block input; the caller clears the rows afterwards
 * (they have no upstream). */
#include <string.h>

#include "safecl/nn.h"

void nn_vpt_forward(float *x, const float *prompts, int64_t B, int64_t N, int64_t T, int64_t D) {
  for (int64_t b = 0; b < B; b++)
    memcpy(x + (b * (N + T) + N) * D, prompts, (size_t)(T * D) * sizeof(float));
}

void nn_vpt_backward(float *dprompts, const float *dx, int64_t B, int64_t N, int64_t T, int64_t D) {
  for (int64_t b = 0; b < B; b++) {
    const float *g = dx + (b * (N + T) + N) * D;
    for (int64_t i = 0; i < T * D; i++) dprompts[i] += g[i];
  }
}

void nn_vpt_backward_ref(float *dprompts, const float *dx, int64_t B, int64_t N, int64_t T,
                         int64_t D) {
  for (int64_t i = 0; i < T * D; i++) {
    double acc = dprompts[i];
    for (int64_t b = 0; b < B; b++) acc += (double)dx[(b * (N + T) + N) * D + i];
    dprompts[i] = (float)acc;
  }
}
