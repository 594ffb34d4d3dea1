/* sessions.c: class order and session boundaries of a class-incremental benchmark, and the
 * selection of each session's samples. The class order is the reference toolboxes' (NumPy's
 * legacy permutation, bit for bit), so session contents match PyCIL/PILOT/RanPAC/SAFE runs. */
#include "safecl/sessions.h"

#include <stdlib.h>

void data_sessions_destroy(data_sessions **s) {
  if (!s || !*s) return;
  scl_free((*s)->start);
  scl_free((*s)->order);
  scl_free((*s)->mapped);
  free(*s);
  *s = NULL;
}

static scl_err make_boundaries(data_sessions *s, int64_t init_cls, int64_t increment) {
  int n = 1;
  int64_t sum = init_cls;
  while (sum + increment < s->n_classes) {
    sum += increment;
    n++;
  }
  if (sum < s->n_classes) n++; /* the remainder (or the last full increment) */
  SCL_CALL(scl_alloc((size_t)(n + 1) * sizeof(int64_t), "session boundaries", (void **)&s->start));
  s->start[0] = 0;
  s->start[1] = init_cls;
  for (int t = 2; t <= n; t++) {
    int64_t next = s->start[t - 1] + increment;
    s->start[t] = next < s->n_classes ? next : s->n_classes;
  }
  s->start[n] = s->n_classes;
  s->n_sessions = n;
  return SCL_OK;
}

scl_err data_sessions_create(int64_t n_classes, int64_t init_cls, int64_t increment, int shuffle,
                             uint32_t seed, data_sessions **out) {
  *out = NULL;
  SCL_CHECK(n_classes >= 1 && init_cls >= 1 && init_cls <= n_classes && increment >= 1, SCL_ERR_ARG,
            "session plan: need 1 <= init_cls (%lld) <= classes (%lld) and increment "
            "(%lld) >= 1",
            (long long)init_cls, (long long)n_classes, (long long)increment);
  data_sessions *s = calloc(1, sizeof *s);
  SCL_CHECK(s, SCL_ERR_NOMEM, "session plan");
  s->n_classes = n_classes;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, make_boundaries(s, init_cls, increment), fail);
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)n_classes * sizeof(int64_t), "class order", (void **)&s->order), fail);
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)n_classes * sizeof(int64_t), "class map", (void **)&s->mapped), fail);
  if (shuffle) {
    SCL_CALL_GOTO(err, scl_np_permutation(seed, n_classes, s->order), fail);
  } else {
    for (int64_t k = 0; k < n_classes; k++) s->order[k] = k;
  }
  for (int64_t k = 0; k < n_classes; k++) s->mapped[s->order[k]] = k;
  *out = s;
  return SCL_OK;
fail:
  data_sessions_destroy(&s);
  return err;
}

scl_err data_sessions_select(const data_sessions *s, const data_dataset *ds, int64_t lo, int64_t hi,
                             int64_t **idx, int32_t **labels, int64_t *n) {
  *idx = NULL;
  *labels = NULL;
  *n = 0;
  SCL_CHECK(data_dataset_num_classes(ds) == s->n_classes, SCL_ERR_ARG,
            "dataset has %lld classes but the session plan has %lld",
            (long long)data_dataset_num_classes(ds), (long long)s->n_classes);
  int64_t count = data_dataset_count(ds), k = 0;
  for (int64_t i = 0; i < count; i++) {
    int64_t m = s->mapped[data_dataset_label(ds, i)];
    k += m >= lo && m < hi;
  }
  SCL_CALL(scl_alloc((size_t)(k ? k : 1) * sizeof(int64_t), "session samples", (void **)idx));
  scl_err err = scl_alloc((size_t)(k ? k : 1) * sizeof(int32_t), "session labels", (void **)labels);
  if (err) {
    scl_free(*idx);
    *idx = NULL;
    return SCL_TRACE(err);
  }
  k = 0;
  for (int64_t i = 0; i < count; i++) {
    int64_t m = s->mapped[data_dataset_label(ds, i)];
    if (m < lo || m >= hi) continue;
    (*idx)[k] = i;
    (*labels)[k++] = (int32_t)m;
  }
  *n = k;
  return SCL_OK;
}
