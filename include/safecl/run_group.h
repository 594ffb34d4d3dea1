/* run_group.h: the rank group a trial runs on (src/run/group.c): the dist_comm that methods,
 * the group ridge solver and the checkpoint file use, and the collective status decision of the
 * runner. Used by the trial runner and by `safecl bench train` (which times the same
 * data-parallel step). */
#ifndef SAFECL_RUN_GROUP_H
#define SAFECL_RUN_GROUP_H

#include "safecl/dist.h"
#include "safecl/method.h"

typedef struct run_group {
  const dist_comm *comm; /* never NULL: dist_comm_self() for this process alone; not owned */
  int rank, size;
} run_group;

/* comm NULL: this process alone (dist_comm_self()). */
void run_group_init(run_group *g, const dist_comm *comm);
/* The collective status decision (dist_agree); local status unchanged on a group of one. */
SCL_NODISCARD scl_err run_group_agree(const run_group *g, scl_err local);
/* *flag = max over the group (a collective yes/no, e.g. "stop"). */
SCL_NODISCARD scl_err run_group_any(const run_group *g, int *flag);
/* run_group_any of n flags in one reduction: flags[k] becomes 1 on every rank if any rank's is. */
SCL_NODISCARD scl_err run_group_any_n(const run_group *g, int64_t *flags, int n);
static inline int run_group_root(const run_group *g) { return g->rank == 0; }

#endif /* SAFECL_RUN_GROUP_H */
