/* test_slca_group.c: SLCA's statistics and classifier alignment on a group of ranks
 * (mpiexec -n G, docs/methods.md k.3-k.4, docs/conventions.md 13):
 *   - statistics fitted from row shards (rank r holds learn_shard of the rows) equal those fitted
 *     from all rows on one process within the double sums' reordering, rounded once to float32
 *     (one float32 ulp of the largest value);
 *   - the alignment on the group (every rank draws its shard of the classes, the samples are
 *     gathered) gives, bit for bit, the head of the alignment on one process: the samples are
 *     functions of their keys and the steps are the same on every rank. */
#include <math.h>
#include <string.h>

#include "learn_test.h"
#include "safecl/dist_mpi.h"
#include "safecl/method.h"
#include "safecl/slca.h"

enum { C = 6, D = 12, N = 60 };

int main(int argc, char **argv) {
  CHECK_OK(dist_init(&argc, &argv));
  dist_comm *world = NULL;
  CHECK_OK(dist_comm_create(MPI_COMM_WORLD, &world));
  const int rank = dist_comm_rank(world), size = dist_comm_size(world);
  float *feat = talloc((size_t)(N * D), sizeof(float));
  int32_t *lab = talloc((size_t)N, sizeof(int32_t));
  fill_uniform(feat, N * D, 21, 0, -1.0f, 2.0f);
  for (int64_t i = 0; i < N; i++) {
    lab[i] = (int32_t)(i % C);
    feat[i * D + lab[i] % D] += 3.0f; /* the classes apart */
  }
  learn_slca_stats one, group;
  CHECK_OK(learn_slca_stats_create(&one, C, D));
  CHECK_OK(learn_slca_stats_create(&group, C, D));
  const int64_t bounds[4] = {0, 2, 4, 6};
  int64_t lo, hi;
  for (int t = 0; t < 3; t++) { /* session t's rows are those of its two classes */
    float *f = talloc((size_t)(N * D), sizeof(float));
    int32_t *l = talloc((size_t)N, sizeof(int32_t));
    int64_t n = 0;
    for (int64_t i = 0; i < N; i++)
      if (lab[i] >= bounds[t] && lab[i] < bounds[t + 1]) {
        memcpy(f + n * D, feat + i * D, sizeof(float) * D);
        l[n++] = lab[i];
      }
    CHECK_OK(learn_slca_stats_fit(&one, dist_comm_self(), f, l, n, bounds[t], bounds[t + 1], t));
    learn_shard(n, size, rank, &lo, &hi);
    CHECK_OK(learn_slca_stats_fit(&group, world, f + lo * D, l + lo, hi - lo, bounds[t],
                                  bounds[t + 1], t));
    free(f), free(l);
  }
  const float *got[2] = {group.mean, group.cov}, *ref[2] = {one.mean, one.cov};
  const int64_t count[2] = {C * D, C * D * D};
  const char *what[2] = {"means", "covariances"};
  for (int k = 0; k < 2; k++) {
    double worst = 0.0, top = 0.0;
    for (int64_t i = 0; i < count[k]; i++) {
      worst = fmax(worst, fabs((double)got[k][i] - ref[k][i]));
      top = fmax(top, fabs((double)ref[k][i]));
    }
    if (rank == 0)
      printf("  %s on %d ranks: worst |d| %.3e (max %.3e)\n", what[k], size, worst, top);
    CHECK(worst <= ldexp(top, -23), "%s on %d ranks differ by %.3e (bound %.3e)", what[k], size,
          worst, ldexp(top, -23));
  }
  /* the alignment on the one-process statistics, alone and on the group */
  const int64_t H = learn_slca_head_count(C, D);
  float *h1 = talloc((size_t)H, sizeof(float)), *hg = talloc((size_t)H, sizeof(float));
  fill_uniform(h1, H, 22, 1, -0.05f, 0.05f);
  memcpy(hg, h1, (size_t)H * sizeof(float));
  learn_slca_align_cfg cfg = {2, 16, 0.01, 0.9, 5e-4, 0.1, 77};
  learn_slca_align_log l1, lg;
  CHECK_OK(learn_slca_align(h1, C, D, &one, bounds, 2, &cfg, dist_comm_self(), &l1));
  CHECK_OK(learn_slca_align(hg, C, D, &one, bounds, 2, &cfg, world, &lg));
  CHECK(!memcmp(h1, hg, (size_t)H * sizeof(float)) && l1.batches == lg.batches,
        "rank %d of %d: the group's aligned head differs from one process's", rank, size);
  int64_t bad = failures;
  CHECK_OK(dist_allreduce_i64(world, &bad, 1, DIST_SUM));
  learn_slca_stats_free(&one);
  learn_slca_stats_free(&group);
  free(feat), free(lab), free(h1), free(hg);
  dist_comm_destroy(&world);
  CHECK_OK(dist_finalize());
  if (rank == 0) printf("test_slca_group (%d ranks): %s\n", size, bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}
