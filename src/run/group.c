/* group.c: the rank group a trial runs on, as the runner and the methods see it (DESIGN.md
 * section 2). Wraps the group's dist_comm (NULL: this process alone) in the learn_comm that
 * methods use for batch-wide terms and gradient sums, and gives the runner its collective status
 * decision: every phase that can fail on one rank alone (reading images, extracting features)
 * ends in run_group_agree, so a rank that hits bad input fails the whole group with its message
 * instead of leaving the others waiting in the next collective. */
#include "safecl/run_group.h"

#include "safecl/dist.h"

static scl_err gather_f32(void *ctx, const float *send, const int64_t *counts, int64_t cols,
                          float *recv) {
  SCL_CALL(dist_allgather_rows_f32(ctx, send, counts, cols, recv));
  return SCL_OK;
}
static scl_err gather_i32(void *ctx, const int32_t *send, const int64_t *counts, int64_t cols,
                          int32_t *recv) {
  SCL_CALL(dist_allgather_rows_i32(ctx, send, counts, cols, recv));
  return SCL_OK;
}
static scl_err sum_f32(void *ctx, float *v, int64_t n) {
  SCL_CALL(dist_allreduce_f32(ctx, v, n, DIST_SUM));
  return SCL_OK;
}
static scl_err sum_f64(void *ctx, double *v, int64_t n) {
  SCL_CALL(dist_allreduce_f64(ctx, v, n, DIST_SUM));
  return SCL_OK;
}
static scl_err sum_i64(void *ctx, int64_t *v, int64_t n) {
  SCL_CALL(dist_allreduce_i64(ctx, v, n, DIST_SUM));
  return SCL_OK;
}

void run_group_init(run_group *g, const dist_comm *comm) {
  if (!comm || dist_comm_size(comm) == 1) {
    g->dist = (dist_comm *)comm;
    g->comm = *learn_comm_self();
    return;
  }
  g->dist = (dist_comm *)comm;
  g->comm = (learn_comm){dist_comm_rank(comm),
                         dist_comm_size(comm),
                         g->dist,
                         gather_f32,
                         gather_i32,
                         sum_f32,
                         sum_f64,
                         sum_i64};
}

scl_err run_group_agree(const run_group *g, scl_err local) {
  if (g->comm.size == 1) return local;
  scl_err err = dist_agree(g->dist, local);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err run_group_any(const run_group *g, int *flag) {
  if (g->comm.size == 1) return SCL_OK;
  int64_t v = *flag;
  SCL_CALL(dist_allreduce_i64(g->dist, &v, 1, DIST_MAX));
  *flag = (int)v;
  return SCL_OK;
}
