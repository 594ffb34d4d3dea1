/* prompt_step_bench.c: activation memory and step time of the prompt methods' trainer shapes on
 * ViT-B/16 (random weights): L2P (25 input tokens after the class token, pooled output: 222
 * tokens, every block TR_FULL) and DualPrompt / CODA-Prompt (per-image prefixes of 5 keys and
 * values at blocks 0-4). Prints, per shape, the resident memory vit_trainer_create adds (caches,
 * working set, scratch: all touched at create) and the mean forward and backward times.
 *
 *   prompt_step_bench [--batch 16] [--threads 2] [--iters 2]
 * Exit 0 ok, 1 error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/pet.h"
#include "safecl/vit.h"
#include "../common/rss.h"

static scl_err shape(vit_model *m, const char *name, pet_config pc, int64_t B, int threads,
                     int iters) {
  const int64_t D = m->cfg.width, img = 3 * 224 * 224;
  const int64_t nt = pc.input_tokens * D, np = pc.sample_prefix_len * D;
  float *images = calloc((size_t)(B * img), sizeof(float));
  float *io_buf = calloc((size_t)(B * (2 * D + 2 * nt + 4 * 5 * np)), sizeof(float));
  SCL_CHECK(images && io_buf, SCL_ERR_NOMEM, "bench buffers");
  for (int64_t i = 0; i < B * img; i++) images[i] = (float)(i % 255) / 255.0f;
  float *out = io_buf, *dout = io_buf + B * D, *next = io_buf + 2 * B * D;
  for (int64_t i = 0; i < B * D; i++) dout[i] = 1e-3f * (float)(i % 7);
  vit_prompt_io io = {0};
  if (nt) io.tokens = next, io.dtokens = next + B * nt, next += 2 * B * nt;
  for (int l = 0; l < 5 && np; l++)
    io.pk[l] = next, io.pv[l] = next + B * np, io.dpk[l] = next + 2 * B * np,
    io.dpv[l] = next + 3 * B * np, next += 4 * B * np;
  vit_trainer *t = NULL;
  const double before = rss_mb();
  SCL_CALL(vit_trainer_create(m, &pc, B, threads, &t));
  const double mem = rss_mb() - before;
  double tf = 0.0, tb = 0.0;
  for (int it = 0; it <= iters; it++) { /* iteration 0 warms up */
    const double t0 = scl_now();
    SCL_CALL(vit_trainer_forward_io(t, NULL, images, B, NULL, &io, out));
    const double t1 = scl_now();
    SCL_CALL(vit_trainer_backward_io(t, NULL, dout, B, &io));
    const double t2 = scl_now();
    if (it) tf += t1 - t0, tb += t2 - t1;
  }
  printf(
      "%-11s batch %lld threads %d: trainer memory %.0f MB; forward %.2f s, backward %.2f s, "
      "step %.2f s (%.2f img/s); planner %.1f GFLOP/img\n",
      name, (long long)B, threads, mem, tf / iters, tb / iters, (tf + tb) / iters,
      (double)B * iters / (tf + tb), vit_trainer_flops_per_image(t) / 1e9);
  vit_trainer_destroy(&t);
  free(images), free(io_buf);
  return SCL_OK;
}

int main(int argc, char **argv) {
  int64_t B = 16;
  int threads = 2, iters = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--batch")) B = atol(argv[i + 1]);
    if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
  }
  vit_config c;
  vit_model *m = NULL;
  scl_err err = vit_config_preset("vit_base_patch16_224", &c);
  if (!err) err = vit_model_create(&c, B, threads, &m);
  if (!err) vit_model_init_random(m, 1);
  const pet_config l2p = {.kinds = PET_INPUT_PROMPT, .input_tokens = 25, .pool_input_tokens = 1};
  const pet_config dual = {
      .kinds = PET_SAMPLE_PREFIX, .sample_prefix_len = 5, .sample_prefix_layers = 0x1f};
  if (!err) err = shape(m, "l2p", l2p, B, threads, iters);
  if (!err) err = shape(m, "dualprompt", dual, B, threads, iters);
  vit_model_destroy(&m);
  if (err) scl_log_error_traceback();
  return err ? 1 : 0;
}
