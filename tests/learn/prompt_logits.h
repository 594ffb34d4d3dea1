/* prompt_logits.h: what the two prompt drivers (prompt_driver.c, prompt_variant_driver.c) share:
 * the logits of a list of test images through a method's network in chunks of a chosen size, and
 * the invariance record (worst logit difference and changed predictions when the test images
 * come in reverse order and in chunks of 1, 7 and 64), written as pairs of doubles. */
#ifndef SAFECL_TESTS_PROMPT_LOGITS_H
#define SAFECL_TESTS_PROMPT_LOGITS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/method.h"
#include "safecl/prompt.h"

/* Logits of the test images (`img_size` square, 3 channels) through `net`, called on
 * consecutive chunks of `chunk` images of the list order[0..n). */
static scl_err net_logits(int64_t img_size, const learn_network *net, const float *timg,
                          const int64_t *order, int64_t n, int64_t chunk, float *out) {
  const int64_t per = 3 * img_size * img_size;
  float *buf = malloc((size_t)(chunk * per) * sizeof(float));
  SCL_CHECK(buf, SCL_ERR_NOMEM, "chunk images");
  scl_err err = SCL_OK;
  for (int64_t i = 0; i < n && !err; i += chunk) {
    int64_t c = n - i < chunk ? n - i : chunk;
    for (int64_t j = 0; j < c; j++)
      memcpy(buf + j * per, timg + order[i + j] * per, (size_t)per * sizeof(float));
    err = net->forward(net->ctx, buf, c, out + i * net->dim);
  }
  free(buf);
  return err;
}

/* The n test images in reverse order, in chunks of 1, 7 and 64, against `ref` (their logits in
 * order): one (worst |difference|, changed predictions) pair per chunk size into f. */
static scl_err invariance(int64_t img_size, int64_t n, const learn_network *net, const float *timg,
                          const float *ref, FILE *f) {
  const int64_t C = net->dim;
  int64_t *order = malloc((size_t)n * 8);
  float *got = malloc((size_t)(n * C) * sizeof(float));
  scl_err err = SCL_OK;
  if (!order || !got) SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "invariance buffers");
  for (int64_t i = 0; i < n; i++) order[i] = n - 1 - i;
  const int64_t chunks[3] = {1, 7, 64};
  for (int c = 0; c < 3; c++) {
    SCL_CALL_GOTO(err, net_logits(img_size, net, timg, order, n, chunks[c], got), done);
    double worst = 0.0, changed = 0.0;
    for (int64_t i = 0; i < n; i++) {
      const float *g = got + i * C, *r = ref + order[i] * C;
      int32_t pg, pr;
      learn_prompt_argmax(&pg, g, 1, C, C);
      learn_prompt_argmax(&pr, r, 1, C, C);
      changed += pg != pr;
      for (int64_t j = 0; j < C; j++) worst = fmax(worst, fabs((double)g[j] - r[j]));
    }
    double rec[2] = {worst, changed};
    fwrite(rec, sizeof rec, 1, f);
  }
done:
  free(order), free(got);
  return err;
}

#endif
