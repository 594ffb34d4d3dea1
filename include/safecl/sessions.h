/* sessions.h: how a benchmark is cut into continual-learning sessions (docs/methods.md a.2).
 *
 * Class-incremental: increments = [init]; while sum + increment < n_classes append increment;
 * any remainder is a last session. Class order: with shuffle, NumPy's legacy
 * `np.random.seed(seed); np.random.permutation(n)` (order[k] is the original label that becomes
 * label k); without, the identity. Session t trains on mapped labels [start_t, end_t) and is
 * evaluated on every test image with a mapped label < end_t.
 *
 * Domain-incremental (DomainNet): every session holds all classes of its own domain; that case
 * is built by the trial runner from one dataset per domain and uses no plan here. */
#ifndef SAFECL_SESSIONS_H
#define SAFECL_SESSIONS_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/data.h"

typedef struct data_sessions {
  int64_t n_classes;
  int n_sessions;
  int64_t *start;  /* n_sessions + 1 entries: session t covers [start[t], start[t+1]) */
  int64_t *order;  /* n_classes: order[k] = original label of mapped label k */
  int64_t *mapped; /* n_classes: mapped[original] = k */
} data_sessions;

SCL_NODISCARD scl_err data_sessions_create(int64_t n_classes, int64_t init_cls, int64_t increment,
                                           int shuffle, uint32_t seed, data_sessions **out);
void data_sessions_destroy(data_sessions **s);

/* Indices (in dataset order) of the samples whose mapped label lies in [lo, hi), and their
 * mapped labels. *idx and *labels are allocated here (scl_free); *n receives the count. */
SCL_NODISCARD scl_err data_sessions_select(const data_sessions *s, const data_dataset *ds,
                                           int64_t lo, int64_t hi, int64_t **idx, int32_t **labels,
                                           int64_t *n);

#endif /* SAFECL_SESSIONS_H */
