/* train_loop.c: the training loop of one session: epochs of shuffled batches with the training
 * transforms, each handed to the method's train_step (docs/architecture.md section 3).
 *
 * Every random choice is a function of the trial seed and a position, never of the rank or the
 * batch a sample lands in: the epoch order is data_shuffle(seed, epoch key), the augmentation of
 * sample i is data_train_transform(seed, epoch key, i), and the method keys dropout by global
 * sample index. The epoch key is session * 4096 + epoch, so sessions never share an order. After
 * every step the loop may checkpoint (train.ckpt_every, train.ckpt_minutes: the clock starts
 * when this process first trains the trial) and polls the stop hook; the position
 * (epoch, next batch) goes into the checkpoint, and a resumed session continues from it with the
 * same numbers as an uninterrupted one. Sessions, epochs and steps are reported to progress.c,
 * which logs the progress lines (train.progress_seconds) and draws the terminal's status line.
 *
 * With train.drop_last an epoch ends before its last batch when that batch is incomplete
 * (floor(n / B) steps instead of ceil(n / B), as a DataLoader with drop_last=True), so every step
 * sees B images; the step count given to train_begin and the checkpoint positions are those
 * steps.
 *
 * On a group of G ranks every rank walks the same epoch order; of each global batch it reads
 * and transforms only its shard (learn_shard), while the labels and sample indices of the whole
 * batch go to the method for the batch-wide loss terms. Reading can fail on one rank alone (a
 * bad image), so the group agrees on the status of every batch before the method's collective
 * step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "safecl/augment.h"
#include "trial_internal.h"

typedef struct loop_buffers {
  float *images;
  int64_t *perm;
  int64_t *labels_all, *index_all;
  void *scratch;
  size_t scratch_bytes;
  data_image img;
} loop_buffers;

static uint32_t epoch_key(int t, int64_t epoch) { return (uint32_t)t * 4096u + (uint32_t)epoch; }

/* Steps of an epoch over n images in batches of B (train.drop_last: complete batches only). */
static int64_t epoch_steps(const trial_state *st, int64_t n, int64_t B) {
  return st->cfg->method.drop_last ? n / B : (n + B - 1) / B;
}

static scl_err ensure_scratch(loop_buffers *b, const data_train_params *p) {
  size_t need = data_train_transform_scratch_bytes(b->img.w, b->img.h, p);
  SCL_CALL(scl_alloc_grow(&b->scratch, &b->scratch_bytes, need, "augmentation scratch"));
  return SCL_OK;
}

/* Loads this rank's shard of batch `k` of epoch `e` (samples perm[k*B ...] of the session
 * list) and the labels and indices of the whole batch. */
static scl_err load_batch(trial_state *st, loop_buffers *b, const int64_t *idx,
                          const int32_t *labels, int64_t n, int64_t B, int64_t k, uint32_t ekey,
                          learn_batch *out) {
  const data_train_params params = DATA_TRAIN_PARAMS_DEFAULT;
  data_train_params p = params;
  p.size = (int)st->cfg->crop;
  int64_t first = k * B, count = n - first < B ? n - first : B, lo, hi;
  const int64_t per_image = 3 * st->cfg->crop * st->cfg->crop;
  learn_shard(count, st->group.size, st->group.rank, &lo, &hi);
  for (int64_t j = 0; j < count; j++) {
    int64_t pos = b->perm[first + j];
    b->labels_all[j] = labels[pos];
    b->index_all[j] = idx[pos];
  }
  *out = (learn_batch){.images = b->images,
                       .labels = b->labels_all + lo,
                       .index = b->index_all + lo,
                       .labels_all = b->labels_all,
                       .index_all = b->index_all,
                       .B = hi - lo,
                       .B_global = count,
                       .offset = lo};
  for (int64_t j = lo; j < hi; j++) {
    int64_t sample = b->index_all[j];
    SCL_CALL(data_dataset_read(st->train, sample, &b->img));
    SCL_CALL(ensure_scratch(b, &p));
    SCL_CALL(data_train_transform(&b->img, &p, (uint64_t)st->cfg->seed, ekey, (uint32_t)sample,
                                  b->images + (j - lo) * per_image, b->scratch, b->scratch_bytes));
  }
  return SCL_OK;
}

static scl_err alloc_loop(loop_buffers *b, int64_t B, int64_t n, int64_t crop, int ranks) {
  int64_t shard = (B + ranks - 1) / ranks; /* the most images a rank reads of a batch */
  SCL_CALL(scl_alloc((size_t)shard * 3 * (size_t)(crop * crop) * sizeof(float), "training batch",
                     (void **)&b->images));
  SCL_CALL(scl_alloc((size_t)B * sizeof(int64_t), "batch labels", (void **)&b->labels_all));
  SCL_CALL(scl_alloc((size_t)B * sizeof(int64_t), "batch indices", (void **)&b->index_all));
  SCL_CALL(scl_alloc((size_t)(n ? n : 1) * sizeof(int64_t), "epoch order", (void **)&b->perm));
  return SCL_OK;
}

static void free_loop(loop_buffers *b) {
  scl_free(b->images);
  scl_free(b->labels_all);
  scl_free(b->index_all);
  scl_free(b->perm);
  scl_free(b->scratch);
  io_image_free(&b->img);
}

/* Steps of the loss record that batch k (0-based) closes: train.log_every = N > 0 closes one
 * after every N-th step of an epoch and at its last; 0 closes one per epoch. */
static int closes_record(int64_t every, int64_t k, int64_t steps) {
  return k + 1 == steps || (every > 0 && (k + 1) % every == 0);
}

/* One epoch from batch `k0`; sums the loss terms into sums[] (st->epoch_loss, which mid-session
 * checkpoints carry, so a resumed epoch reports the same mean loss) and logs a record of their
 * mean whenever a step closes one (closes_record), then starts the sums afresh. */
static scl_err run_epoch(trial_state *st, const learn_session *s, loop_buffers *b,
                         const int64_t *idx, const int32_t *labels, int64_t n,
                         const learn_train_plan *plan, int64_t e, int64_t k0, double *sums) {
  int64_t steps = epoch_steps(st, n, plan->batch);
  uint32_t ekey = epoch_key(s->t, e);
  SCL_CALL(data_shuffle((uint64_t)st->cfg->seed, ekey, n, b->perm));
  for (int64_t k = k0; k < steps; k++) {
    learn_batch batch;
    double losses[LEARN_MAX_LOSS_TERMS] = {0};
    SCL_CALL(run_group_agree(&st->group,
                             load_batch(st, b, idx, labels, n, plan->batch, k, ekey, &batch)));
    batch.epoch = e;
    batch.step = e * steps + k;
    SCL_CALL(st->method->ops->train_step(st->method, s, &batch, losses));
    SCL_CHECK(isfinite(losses[0]), SCL_ERR_NUMERIC, "session %d epoch %lld step %lld: loss is %g",
              s->t + 1, (long long)e + 1, (long long)k + 1, losses[0]);
    for (int j = 0; j < plan->n_terms; j++) sums[j] += losses[j];
    SCL_DEBUG("session %d epoch %lld batch %lld: loss %.9g", s->t + 1, (long long)e + 1,
              (long long)k + 1, losses[0]);
    int64_t every = st->cfg->log_every;
    if (closes_record(every, k, steps)) {
      int64_t first = every > 0 ? k / every * every : 0; /* the record's first step */
      double mean[LEARN_MAX_LOSS_TERMS];
      for (int j = 0; j < plan->n_terms; j++) mean[j] = sums[j] / (double)(k + 1 - first);
      SCL_CALL(trial_log_losses(st, s->t, e, k + 1, plan, mean));
      if (k + 1 == steps)
        SCL_INFO("session %d epoch %lld/%lld: loss %.4f (mean of steps %lld..%lld)", s->t + 1,
                 (long long)e + 1, (long long)plan->epochs, mean[0], (long long)first + 1,
                 (long long)k + 1);
      memset(sums, 0, LEARN_MAX_LOSS_TERMS * sizeof(double));
    }
    run_progress_step(st->progress, k + 1);
    SCL_CALL(trial_step_boundary(st, s->t, e, k + 1));
  }
  return SCL_OK;
}

scl_err trial_train_session(trial_state *st, const learn_session *s, const int64_t *idx,
                            const int32_t *labels, int64_t n, int64_t resume_epoch,
                            int64_t resume_batch) {
  const learn_method_ops *ops = st->method->ops;
  if (!ops->train_plan) return SCL_OK;
  learn_train_plan plan = ops->train_plan(st->method, s);
  if (plan.epochs <= 0 || n == 0) return SCL_OK;
  int64_t steps = epoch_steps(st, n, plan.batch),
          used = steps * plan.batch < n ? steps * plan.batch : n;
  loop_buffers b = {0};
  scl_err err = SCL_OK;
  if (st->ckpt_clock == 0) st->ckpt_clock = scl_now();
  SCL_CALL_GOTO(err, alloc_loop(&b, plan.batch, n, st->cfg->crop, st->group.size), done);
  if (steps == 0)
    SCL_WARN(
        "session %d: %lld training images, fewer than train.batch = %lld with "
        "train.drop_last: its epochs take no step",
        s->t + 1, (long long)n, (long long)plan.batch);
  SCL_CALL_GOTO(err, ops->train_begin(st->method, s, steps), done);
  run_progress_session(st->progress, s->t, plan.epochs, steps, used, plan.batch);
  if (resume_epoch >= 0)
    SCL_CALL_GOTO(err, run_group_agree(&st->group, trial_checkpoint_load_method(st)), done);
  for (int64_t e = resume_epoch >= 0 ? resume_epoch : 0; e < plan.epochs; e++) {
    double *sums = st->epoch_loss;
    int64_t k0 = e == resume_epoch ? resume_batch : 0;
    run_progress_epoch(st->progress, e, k0);
    if (k0 == 0) memset(st->epoch_loss, 0, sizeof st->epoch_loss);
    if (k0 < steps)
      SCL_CALL_GOTO(err, run_epoch(st, s, &b, idx, labels, n, &plan, e, k0, sums), done);
    SCL_CALL_GOTO(err, ops->train_epoch_end(st->method, s, e), done);
    run_progress_epoch_end(st->progress);
    SCL_CALL_GOTO(err, trial_step_boundary(st, s->t, e + 1, 0), done);
  }
  SCL_CALL_GOTO(err, ops->train_end(st->method, s), done);
done:
  run_progress_session_end(st->progress);
  free_loop(&b);
  return err;
}
