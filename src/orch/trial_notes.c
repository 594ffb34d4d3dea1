/* trial_notes.c: the text files the coordinator leaves in a trial's directory so that a reader
 * of trials/<id>/ alone (`safecl report`, analysis/load_results.py) can place a trial that has
 * no results: trial.cfg, written when an attempt starts, and failed.txt, written when the trial
 * fails for good (analysis/SCHEMA.md, "Trials without results").
 *
 * Both hold the trial's identity config (cfg_dump_identity: one flat `key = value;` line per key
 * that changes results, the text trial.h5 keeps as `identity_config`) and its `run.dir`, so that
 * the report puts the trial in the same configuration as its finished seeds; failed.txt starts
 * with `error = "...";`, the message of the ledger's FAILED record. A trial whose config files
 * cannot be read gets the plan's dataset, method and seed instead. Both files are published by
 * write-then-rename. Starting an attempt removes a failed.txt left by an earlier failure (a
 * retried trial is not failed). The ledger stays the record: a file that cannot be written is a
 * warning, never a reason to stop the sweep. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orch_internal.h"
#include "safecl/publish.h"

/* The trial's identity config loaded from its layering, or NULL (the error is taken). */
static char *identity_text(const orch_sweep *s, const orch_trial *t) {
  int argc = 0;
  char **argv = NULL;
  char *text = NULL;
  run_trial_cfg cfg = {0};
  scl_err err = orch_plan_args(s, t, NULL, &argc, &argv);
  int n_files = s->n_base + (t->dataset >= 0) + (t->method >= 0);
  if (!err && n_files > argc) n_files = argc;
  if (!err)
    err = cfg_load_files(&run_trial_schema, (const char *const *)argv, n_files, argc - n_files,
                         argv + n_files, &cfg);
  if (!err) err = cfg_dump_identity(&run_trial_schema, &cfg, &text);
  cfg_free(&run_trial_schema, &cfg);
  orch_args_free(argc, argv);
  if (err) {
    scl_error_take(NULL, 0);
    free(text);
    return NULL;
  }
  return text;
}

/* Appends `value` quoted as a libconfig string (\" and \\ escaped, line breaks as spaces). */
static void put_quoted(FILE *f, const char *value) {
  fputc('"', f);
  for (const char *p = value ? value : ""; *p; p++) {
    if (*p == '"' || *p == '\\') fputc('\\', f);
    fputc(*p == '\n' || *p == '\r' ? ' ' : *p, f);
  }
  fputc('"', f);
}

static void note_warn(const char *what, const char *id) {
  scl_log_error_traceback();
  scl_error_take(NULL, 0);
  SCL_WARN("trial %s: %s not written (the ledger keeps the record)", id, what);
}

/* Writes RUN_DIR/trials/<id>/<name>: an `error` line when error is not NULL, then the config. */
static scl_err write_note(const orch_sweep *s, const orch_trial *t, const char *run_dir,
                          const char *name, const char *error) {
  char dir[4200], path[4300];
  orch_rundir_trial(run_dir, t->id, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *ident = identity_text(s, t), *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) {
    free(ident);
    return SCL_ERROR(SCL_ERR_NOMEM, "%s: text buffer", path);
  }
  if (error) {
    fputs("error = ", f);
    put_quoted(f, error);
    fputs(";\n", f);
  }
  if (ident) {
    fputs(ident, f);
    if (ident[0] && ident[strlen(ident) - 1] != '\n') fputc('\n', f);
  } else {
    fputs("dataset.name = ", f);
    put_quoted(f, t->dataset_name);
    fputs(";\nmethod.name = ", f);
    put_quoted(f, t->method_name);
    fputs(";\n", f);
    if (t->has_seed) fprintf(f, "seed = %lld;\n", (long long)t->seed);
  }
  fputs("run.dir = ", f);
  put_quoted(f, dir);
  fputs(";\n", f);
  free(ident);
  int bad = fclose(f) != 0;
  scl_err err = bad ? SCL_ERROR(SCL_ERR_NOMEM, "%s: text buffer", path) : io_mkdirs(dir);
  if (!err) err = io_write_file_atomic(path, buf, len);
  free(buf);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

void orch_trial_note_started(const orch_sweep *s, const orch_trial *t, const char *run_dir) {
  char dir[4200], path[4300];
  orch_rundir_trial(run_dir, t->id, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/failed.txt", dir);
  if (unlink(path) != 0 && errno != ENOENT)
    SCL_WARN("trial %s: cannot remove the earlier %s: %s", t->id, path, strerror(errno));
  snprintf(path, sizeof path, "%s/trial.cfg", dir);
  if (access(path, F_OK) == 0) return; /* same identity, same text */
  if (write_note(s, t, run_dir, "trial.cfg", NULL) != SCL_OK) note_warn("trial.cfg", t->id);
}

void orch_trial_note_failed(const orch_sweep *s, const orch_trial *t, const char *run_dir,
                            const char *message) {
  if (write_note(s, t, run_dir, "failed.txt", message ? message : "") != SCL_OK)
    note_warn("failed.txt", t->id);
}

int orch_trial_note_has_failed(const char *run_dir, const char *id) {
  char dir[4200], path[4300];
  orch_rundir_trial(run_dir, id, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/failed.txt", dir);
  return access(path, F_OK) == 0;
}
