/* extract.h: features of a list of dataset samples through one network, with the evaluation
 * transform (Resize + CenterCrop + ToTensor [+ Normalize]). Shared by `safecl features`, the
 * classifier statistics and evaluation of a trial. */
#ifndef SAFECL_EXTRACT_H
#define SAFECL_EXTRACT_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/data.h"
#include "safecl/method.h"

typedef struct run_extract_opts {
  int resize, crop;        /* the test transform */
  const float *mean, *std; /* NULL: no normalisation (the SAFE default) */
  int64_t batch;           /* images per forward */
  const char *what;        /* for progress lines, e.g. "session 3 test" */
} run_extract_opts;

/* out[k] (net->dim floats) = features of sample idx[k] (idx NULL: sample k), k < n.
 * *seconds_data and *seconds_forward (may be NULL) accumulate the time spent in each. */
SCL_NODISCARD scl_err run_extract(const learn_network *net, const data_dataset *ds,
                                  const int64_t *idx, int64_t n, const run_extract_opts *opts,
                                  float *out, double *seconds_data, double *seconds_forward);

#endif /* SAFECL_EXTRACT_H */
