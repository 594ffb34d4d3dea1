/* test_run_batches.c: the batch-wise evaluation of a diagnostic network (src/run/batchwise.c),
 * run under mpiexec at 1, 2, 3 and 4 ranks.
 *
 * 1. The batch plan, for lists with repeated labels out of order, several batch sizes (1, 3, 8,
 *    100) and every group size 1..4 (computed locally): the order is a permutation that sorts the
 *    labels and keeps list order among equal labels (against an insertion sort), every batch but
 *    the last holds exactly `batch` images, the ranks' batches and rows concatenate in rank order
 *    to the whole list, each once.
 * 2. run_extract_batchwise on the MPI group with a network whose output depends on its whole
 *    call (the sum of a pixel over the call, the call's size, the image's own pixel): every rank's
 *    shard of the list, in list order, equals the value computed from the batches of an
 *    independent stable sort; the forward calls over the group number exactly the batches (so
 *    eval.batch = 1 does not re-chunk them), none larger than test_batch. */
#include <stdlib.h>
#include <string.h>

#include "common/scl_check.h"
#include "safecl/dist_mpi.h"
#include "safecl/trial.h"

static int rank, size;

/* A list with repeated labels in no particular order. */
static void make_labels(int64_t n, int32_t *labels) {
  for (int64_t i = 0; i < n; i++) labels[i] = (int32_t)((i * 7 + 3) % 5);
}

/* Positions sorted by label, ties in list order, by insertion (the independent reference). */
static void insertion_order(const int32_t *labels, int64_t n, int64_t *order) {
  for (int64_t i = 0; i < n; i++) {
    int64_t j = i;
    while (j > 0 && labels[order[j - 1]] > labels[i]) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
}

static void check_plan(int64_t n, int64_t batch, int g) {
  int32_t labels[64];
  int64_t want[64], next_row = 0, next_batch = 0;
  make_labels(n, labels);
  insertion_order(labels, n, want);
  for (int r = 0; r < g; r++) {
    run_batch_plan p;
    CHECK_OK(run_batch_plan_create(labels, n, batch, g, r, &p));
    CHECK(p.n_batches == (n + batch - 1) / batch, "n %lld batch %lld: %lld batches", (long long)n,
          (long long)batch, (long long)p.n_batches);
    for (int64_t i = 0; i < n; i++)
      CHECK(p.order[i] == want[i], "n %lld batch %lld: order[%lld] = %lld, want %lld (stable sort)",
            (long long)n, (long long)batch, (long long)i, (long long)p.order[i],
            (long long)want[i]);
    CHECK(p.first == next_batch && p.last >= p.first && p.last <= p.n_batches,
          "group %d rank %d: batches [%lld, %lld) do not follow %lld", g, r, (long long)p.first,
          (long long)p.last, (long long)next_batch);
    CHECK(p.lo == next_row && p.lo == (p.first * batch < n ? p.first * batch : n) &&
              p.hi == (p.last * batch < n ? p.last * batch : n),
          "group %d rank %d: rows [%lld, %lld) are not its batches' rows", g, r, (long long)p.lo,
          (long long)p.hi);
    for (int64_t b = p.first; b < p.last; b++) {
      int64_t len = (b + 1) * batch < n ? batch : n - b * batch;
      CHECK(len == batch || b + 1 == p.n_batches, "batch %lld of %lld holds %lld images",
            (long long)b, (long long)p.n_batches, (long long)len);
    }
    int64_t lo, hi;
    run_batch_plan_rows(&p, g, r, &lo, &hi);
    CHECK(lo == p.lo && hi == p.hi, "run_batch_plan_rows disagrees with the plan");
    next_row = p.hi;
    next_batch = p.last;
    run_batch_plan_free(&p);
  }
  CHECK(next_row == n && next_batch == (n + batch - 1) / batch,
        "group %d, n %lld, batch %lld: the ranks cover %lld rows and %lld batches", g, (long long)n,
        (long long)batch, (long long)next_row, (long long)next_batch);
}

/* The diagnostic network: per image (own pixel, sum of the pixel over the call, call size). */
typedef struct call_log {
  int64_t calls, largest;
} call_log;

static scl_err batch_forward(void *ctx, const float *images, int64_t B, float *out) {
  call_log *log = ctx;
  const int64_t per_image = 3 * 16 * 16;
  float sum = 0.0f;
  for (int64_t b = 0; b < B; b++) sum += images[b * per_image + 37];
  for (int64_t b = 0; b < B; b++) {
    out[b * 3 + 0] = images[b * per_image + 37];
    out[b * 3 + 1] = sum;
    out[b * 3 + 2] = (float)B;
  }
  log->calls++;
  log->largest = B > log->largest ? B : log->largest;
  return SCL_OK;
}

static void check_extract(const dist_comm *world, const data_dataset *ds, int64_t test_batch) {
  enum { N = 45 };
  int64_t idx[N], order[N];
  int32_t labels[N];
  for (int64_t i = 0; i < N; i++) { /* a shuffled subset of the dataset */
    idx[i] = (i * 17 + 5) % data_dataset_count(ds);
    labels[i] = (int32_t)data_dataset_label(ds, idx[i]);
  }
  insertion_order(labels, N, order);
  call_log log = {0, 0};
  learn_network net = {.name = "batchwise",
                       .dim = 3,
                       .forward = batch_forward,
                       .ctx = &log,
                       .predict_only = 1,
                       .test_batch = test_batch};
  run_extract_opts o = {.resize = 0, .crop = 16, .batch = 1, .what = "test"};
  /* each image's own pixel, one image per call, on this rank alone */
  float own[N * 3], sorted_ref[N * 3];
  learn_network single = net;
  single.test_batch = 0;
  call_log single_log = {0, 0};
  single.ctx = &single_log;
  CHECK_OK(run_extract(&single, ds, idx, N, &o, own, NULL, NULL));
  for (int64_t b0 = 0; b0 < N; b0 += test_batch) {
    int64_t len = N - b0 < test_batch ? N - b0 : test_batch;
    float sum = 0.0f;
    for (int64_t j = b0; j < b0 + len; j++) sum += own[order[j] * 3];
    for (int64_t j = b0; j < b0 + len; j++) {
      sorted_ref[order[j] * 3 + 0] = own[order[j] * 3];
      sorted_ref[order[j] * 3 + 1] = sum;
      sorted_ref[order[j] * 3 + 2] = (float)len;
    }
  }
  int64_t lo, hi;
  learn_shard(N, size, rank, &lo, &hi);
  float out[N * 3];
  CHECK_OK(run_extract_batchwise(&net, ds, idx, labels, N, &o, world, out));
  for (int64_t i = lo; i < hi; i++)
    for (int c = 0; c < 3; c++)
      CHECK(out[(i - lo) * 3 + c] == sorted_ref[i * 3 + c],
            "rank %d of %d, test_batch %lld: image %lld column %d = %g, want %g", rank, size,
            (long long)test_batch, (long long)i, c, out[(i - lo) * 3 + c], sorted_ref[i * 3 + c]);
  int64_t calls[2] = {log.calls, -log.largest};
  CHECK_OK(dist_allreduce_i64(world, calls, 1, DIST_SUM));
  CHECK_OK(dist_allreduce_i64(world, calls + 1, 1, DIST_MIN));
  CHECK(calls[0] == (N + test_batch - 1) / test_batch && -calls[1] <= test_batch,
        "test_batch %lld on %d ranks: %lld forward calls (want %lld), largest %lld",
        (long long)test_batch, size, (long long)calls[0],
        (long long)((N + test_batch - 1) / test_batch), (long long)-calls[1]);
}

int main(int argc, char **argv) {
  CHECK_OK(dist_init(&argc, &argv));
  dist_comm *world = NULL;
  CHECK_OK(dist_comm_create(MPI_COMM_WORLD, &world));
  rank = dist_comm_rank(world);
  size = dist_comm_size(world);
  static const int64_t ns[] = {0, 1, 7, 23, 64}, batches[] = {1, 3, 8, 100};
  for (int g = 1; g <= 4; g++)
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
      for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
        check_plan(ns[a], batches[b], g);
  data_source src = {.format = "synthetic",
                     .split = "test",
                     .n_classes = 6,
                     .per_class = 9,
                     .image_size = 16,
                     .seed = 3,
                     .difficulty = 0.2};
  data_dataset *ds = NULL;
  CHECK_OK(data_dataset_open(&src, &ds));
  if (ds)
    for (int64_t tb = 1; tb <= 16; tb += 5) check_extract(world, ds, tb);
  data_dataset_close(&ds);
  int64_t bad = failures;
  CHECK_OK(dist_allreduce_i64(world, &bad, 1, DIST_SUM));
  dist_comm_destroy(&world);
  CHECK_OK(dist_finalize());
  if (rank == 0) printf("test_run_batches (%d ranks): %s\n", size, bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}
