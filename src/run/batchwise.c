/* batchwise.c: the batch-wise evaluation of a diagnostic network (learn_network.test_batch > 0,
 * docs/architecture.md section 4): the list in label order (stable), consecutive batches of
 * exactly test_batch images, one forward call per batch, whole batches per rank, the outputs
 * gathered to every rank and handed back at each image's own list position.
 *
 * Such a network's output for an image depends on the other images of its batch, so the batches
 * are fixed by the list and its labels alone, never by the group size or eval.batch: every rank
 * count gives the same numbers. The sort reads the labels of the evaluated images, which is
 * the test-set leak the diagnostic exists to measure (PILOT's class-sorted test loader). */
#include <stdlib.h>
#include <string.h>

#include "safecl/trial.h"

typedef struct keyed {
  int32_t label;
  int64_t pos;
} keyed;

static int cmp_keyed(const void *pa, const void *pb) {
  const keyed *a = pa, *b = pb;
  if (a->label != b->label) return a->label < b->label ? -1 : 1;
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}

void run_batch_plan_rows(const run_batch_plan *p, int size, int rank, int64_t *lo, int64_t *hi) {
  int64_t b0, b1;
  learn_shard(p->n_batches, size, rank, &b0, &b1);
  *lo = b0 * p->batch < p->n ? b0 * p->batch : p->n;
  *hi = b1 * p->batch < p->n ? b1 * p->batch : p->n;
}

scl_err run_batch_plan_create(const int32_t *labels, int64_t n, int64_t batch, int size, int rank,
                              run_batch_plan *p) {
  memset(p, 0, sizeof *p);
  SCL_CHECK(batch >= 1 && n >= 0 && size >= 1 && rank >= 0 && rank < size, SCL_ERR_ARG,
            "batch-wise evaluation: %lld images in batches of %lld on rank %d of %d", (long long)n,
            (long long)batch, rank, size);
  keyed *k = NULL;
  SCL_CALL(scl_alloc((size_t)(n ? n : 1) * sizeof *k, "batch plan keys", (void **)&k));
  scl_err err =
      scl_alloc((size_t)(n ? n : 1) * sizeof(int64_t), "batch plan order", (void **)&p->order);
  if (err) {
    scl_free(k);
    return SCL_TRACE(err);
  }
  for (int64_t i = 0; i < n; i++) k[i] = (keyed){labels[i], i};
  qsort(k, (size_t)n, sizeof *k, cmp_keyed); /* (label, position) keys are distinct: stable */
  for (int64_t i = 0; i < n; i++) p->order[i] = k[i].pos;
  scl_free(k);
  p->n = n;
  p->batch = batch;
  p->n_batches = (n + batch - 1) / batch;
  learn_shard(p->n_batches, size, rank, &p->first, &p->last);
  run_batch_plan_rows(p, size, rank, &p->lo, &p->hi);
  return SCL_OK;
}

void run_batch_plan_free(run_batch_plan *p) {
  scl_free(p->order);
  memset(p, 0, sizeof *p);
}

/* This rank's batches through the network: rows [p->lo, p->hi) of the sorted list into
 * sorted + p->lo * dim. The rank's rows start on a batch boundary and every batch but the
 * list's last holds exactly p->batch images, so run_extract's chunks of p->batch are the
 * plan's batches. */
static scl_err forward_batches(const learn_network *net, const data_dataset *ds, const int64_t *idx,
                               const run_batch_plan *p, const run_extract_opts *opts,
                               float *sorted) {
  int64_t count = p->hi - p->lo, *samples = NULL;
  SCL_CALL(scl_alloc((size_t)(count ? count : 1) * sizeof(int64_t), "batch-wise samples",
                     (void **)&samples));
  for (int64_t j = 0; j < count; j++) samples[j] = idx[p->order[p->lo + j]];
  run_extract_opts o = *opts;
  o.batch = p->batch;
  scl_err err = run_extract(net, ds, samples, count, &o, sorted + p->lo * net->dim, NULL, NULL);
  scl_free(samples);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err run_extract_batchwise(const learn_network *net, const data_dataset *ds, const int64_t *idx,
                              const int32_t *labels, int64_t n, const run_extract_opts *opts,
                              const dist_comm *comm, float *out) {
  const int size = dist_comm_size(comm), rank = dist_comm_rank(comm);
  const int64_t dim = net->dim;
  run_batch_plan p = {0};
  float *sorted = NULL;
  int64_t *inv = NULL;
  scl_err err = run_batch_plan_create(labels, n, net->test_batch, size, rank, &p);
  if (!err)
    err = scl_alloc((size_t)((n ? n : 1) * dim) * sizeof(float), "batch-wise outputs",
                    (void **)&sorted);
  if (!err) err = forward_batches(net, ds, idx, &p, opts, sorted);
  if (size > 1) { /* every rank reaches the gather, or none does */
    err = dist_agree(comm, err);
    if (!err) {
      int64_t counts[LEARN_MAX_GROUP];
      for (int r = 0; r < size; r++) {
        int64_t lo, hi;
        run_batch_plan_rows(&p, size, r, &lo, &hi);
        counts[r] = hi - lo;
      }
      err = dist_allgather_rows_f32(comm, sorted + p.lo * dim, counts, dim, sorted);
    }
  }
  if (!err)
    err = scl_alloc((size_t)(n ? n : 1) * sizeof(int64_t), "batch-wise positions", (void **)&inv);
  if (!err) {
    int64_t lo, hi;
    for (int64_t j = 0; j < n; j++) inv[p.order[j]] = j;
    learn_shard(n, size, rank, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
      memcpy(out + (i - lo) * dim, sorted + inv[i] * dim, (size_t)dim * sizeof(float));
  }
  run_batch_plan_free(&p);
  scl_free(sorted);
  scl_free(inv);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}
