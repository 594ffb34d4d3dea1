/* group.c: the rank group a trial runs on, as the runner and the methods see it
 * (docs/architecture.md section 2): the group's dist_comm (dist_comm_self() for this process
 * alone), which methods use directly for batch-wide terms and gradient sums, and the runner's
 * collective status decision: every phase that can fail on one rank alone (reading images,
 * extracting features) ends in run_group_agree, so a rank that hits bad input fails the whole group
 * with its message instead of leaving the others waiting in the next collective. */
#include "safecl/run_group.h"

void run_group_init(run_group *g, const dist_comm *comm) {
  g->comm = comm ? comm : dist_comm_self();
  g->rank = dist_comm_rank(g->comm);
  g->size = dist_comm_size(g->comm);
}

scl_err run_group_agree(const run_group *g, scl_err local) {
  if (g->size == 1) return local;
  SCL_CALL(dist_agree(g->comm, local));
  return SCL_OK;
}

scl_err run_group_any_n(const run_group *g, int64_t *flags, int n) {
  if (g->size == 1) return SCL_OK;
  SCL_CALL(dist_allreduce_i64(g->comm, flags, n, DIST_MAX));
  return SCL_OK;
}

scl_err run_group_any(const run_group *g, int *flag) {
  int64_t v = *flag;
  SCL_CALL(run_group_any_n(g, &v, 1));
  *flag = (int)v;
  return SCL_OK;
}
