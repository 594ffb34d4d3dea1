/* trial_phases.h: the phases of a trial that trial.c runs in order, and the benchmark layout
 * they share with the planner: opening and closing a trial (trial_open.c), the validation split
 * (trial_validation.c), one session's training, fit and evaluation (trial_session.c), and the
 * splits, sessions and classes the config defines (trial_layout.c, also read by identity.c and
 * plan_count.c). Private to src/run/. */
#ifndef SAFECL_RUN_TRIAL_PHASES_H
#define SAFECL_RUN_TRIAL_PHASES_H

#include "trial_internal.h"

/* Opens the split "train" or "test" of the config's dataset; the caller closes it. */
SCL_NODISCARD scl_err trial_open_split(const run_trial_cfg *cfg, const char *split,
                                       data_dataset **out);
/* The sessions of a benchmark of nc classes: one per domain of dataset.domains (domain-
 * incremental, *dil = 1), or the class order and increments of the config. The caller destroys
 * *plan. */
SCL_NODISCARD scl_err trial_sessions_layout(const run_trial_cfg *cfg, int64_t nc,
                                            data_sessions **plan, int *n_sessions, int *dil);
/* Domain t of the comma-separated list (DomainNet's session order), into buf; returns buf. */
const char *trial_domain_name(const char *domains, int t, char *buf, size_t cap);
/* The session layout in words, into buf; returns buf. */
const char *trial_sessions_text(const trial_state *st, char *buf, size_t cap);
/* The classes [*lo, *hi) session t introduces: its slice of the class order, or all (DIL). */
void trial_session_classes(const trial_state *st, int t, int64_t *lo, int64_t *hi);
/* Keeps the selected samples of `ds` whose domain is `domain` (in place). */
void trial_keep_domain(const data_dataset *ds, int domain, int64_t *idx, int32_t *labels,
                       int64_t *n);

/* Opens the benchmark and the trial's identity, its run.dir and trial.log; *finished = 1 when
 * run.dir already holds this trial finished (result filled, nothing else opened). Every rank of
 * the group calls it and the caller agrees on the status (run_group_agree). */
SCL_NODISCARD scl_err trial_open(const run_trial_cfg *cfg, trial_state *st,
                                 run_trial_result *result, int *finished);
/* The validation split, the backbone, the group's ridge solver, the method and its metrics; as
 * trial_open, on every rank, the caller agreeing. */
SCL_NODISCARD scl_err trial_open_learning(const run_trial_cfg *cfg, trial_state *st);
/* Frees what trial_open and trial_open_learning opened; a partly opened state is fine. */
void trial_close(trial_state *st);

/* Carves the validation split out of session 1's training data into st->val_idx/val_labels
 * (nothing when eval.val_fraction is 0). */
SCL_NODISCARD scl_err trial_carve_validation(trial_state *st);
/* Removes the validation samples (sorted) from a sorted training list, in place. */
void trial_drop_validation(const trial_state *st, int64_t *idx, int32_t *labels, int64_t *n);

/* Session t: trains the method, fits its classifier, evaluates every predictor on the test
 * images of the classes seen so far and on the validation split (collective over the group). */
SCL_NODISCARD scl_err trial_run_session(trial_state *st, int t);

#endif /* SAFECL_RUN_TRIAL_PHASES_H */
