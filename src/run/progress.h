/* progress.h: progress of a trial's training (progress.c), for the training loop. Private to
 * src/run/. */
#ifndef SAFECL_RUN_PROGRESS_H
#define SAFECL_RUN_PROGRESS_H

#include <stdint.h>

#include "safecl/core.h"

struct trial_state;
typedef struct run_progress run_progress;

/* The progress of the trial st (its sessions, dataset and config); on group rank 0 only (NULL
 * elsewhere, and every call below accepts NULL). The clock of "elapsed (trial)" starts now. The
 * trial's ETA comes from the plan's work count (plan.c) when it can be counted, else from this
 * run's measured rates. Owned by the caller: run_progress_destroy. */
SCL_NODISCARD scl_err run_progress_create(const struct trial_state *st, run_progress **out);
void run_progress_destroy(run_progress **p);
/* Session t starts (or resumes) training: `epochs` epochs of `steps` steps over `images` images
 * per epoch (the images the steps see) in batches of `batch`. */
void run_progress_session(run_progress *p, int t, int64_t epochs, int64_t steps, int64_t images,
                          int64_t batch);
/* Epoch e starts at batch k0 (0, or the resumed batch). */
void run_progress_epoch(run_progress *p, int64_t e, int64_t k0);
/* `done` steps of the current epoch are done: a progress line every train.progress_seconds
 * (a status line on a terminal instead, redrawn at most a few times a second). */
void run_progress_step(run_progress *p, int64_t done);
/* The current epoch ended: a progress line always (with the epoch's time and img/s). */
void run_progress_epoch_end(run_progress *p);
/* The session's training ended (the status line goes away). */
void run_progress_session_end(run_progress *p);

#endif /* SAFECL_RUN_PROGRESS_H */
