/* worker.c: a worker group: ask the coordinator for a trial, run it with the trial runner, report
 * the result, repeat until EXIT.
 *
 * Group rank 0 alone talks to the coordinator and broadcasts each reply to the group, and every
 * rank of the group calls run_trial_ex on the same config, so a group of G ranks follows exactly
 * the loop a group of one does (the data parallelism is inside run_trial_ex, which gets the
 * group's communicator). The runner's should_stop hook, polled at session and step boundaries, is where
 * the group reports progress and learns of a stop: the coordinator answers CONTINUE or HALT, and
 * on HALT the runner returns SCL_ERR_STOP with its checkpoint published. A trial's failure is
 * data for the coordinator (RESULT with the error code and message), never a failure of the
 * group; only a failing MPI call ends the loop with an error, and then the job is aborted from
 * main. A fatal signal while a trial runs is recorded as that trial's crash (crash.c). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "orch_internal.h"

typedef struct worker {
  const dist_comm *world, *group;
  int group_id, leader;
  const orch_msg *trial;
  int boundaries; /* should_stop calls in this attempt (read by the crash handler) */
  int halted;     /* the coordinator said HALT */
  double interval, last_ask;
  double latency; /* last round trip to the coordinator */
  scl_err comm_err;
} worker;

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Leader only: send `out` to the coordinator and wait for its reply. */
static scl_err ask(worker *w, const orch_msg *out, orch_msg *in) {
  orch_msg_clear(in);
  double t0 = scl_now();
  SCL_CALL(orch_msg_send(w->world, 0, out));
  SCL_CALL(orch_msg_recv(w->world, 0, in, NULL));
  w->latency = scl_now() - t0;
  w->last_ask = t0;
  return SCL_OK;
}

/* The leader asks; then the whole group shares the reply. */
static scl_err exchange(worker *w, const orch_msg *out, orch_msg *in) {
  if (w->leader) SCL_CALL(ask(w, out, in));
  /* The attempt's stamp, the same on every rank of the group: it names the attempt in crash
   * records, so that several ranks dying of one crash count once. */
  if (w->leader && in->type == ORCH_MSG_TRIAL) in->seconds = unix_now();
  SCL_CALL(orch_msg_bcast(w->group, 0, in));
  return SCL_OK;
}

/* The runner polls this at every session and training-step boundary. Asking the coordinator at
 * every step would flood it, so the leader asks at the first boundary of an attempt and then at
 * most every `interval` seconds (SAFECL_PROGRESS_INTERVAL, default 1 s); a HALT therefore takes
 * effect at the first boundary at least that long after the previous question. The other ranks
 * of the group answer 0: the runner stops the whole group when any rank's hook says so
 * (trial_should_stop's one reduction per boundary), so the leader's verdict reaches them there. */
static int should_stop(void *ctx) {
  worker *w = ctx;
  int halt = w->halted || w->comm_err;
  w->boundaries++;
  if (w->leader && !halt && (w->boundaries == 1 || scl_now() - w->last_ask >= w->interval)) {
    orch_msg out = {.type = ORCH_MSG_PROGRESS,
                    .group = w->group_id,
                    .trial = w->trial->trial,
                    .attempt = w->trial->attempt,
                    .sessions = w->boundaries,
                    .latency = w->latency};
    memcpy(out.id, w->trial->id, sizeof out.id);
    orch_msg in = {0};
    w->comm_err = ask(w, &out, &in);
    halt = w->comm_err || in.type == ORCH_MSG_HALT;
    orch_msg_clear(&in);
  }
  w->halted = halt;
  return halt;
}

/* The trial's layering ("F <file>" / "O <key=value>" lines) into files and overrides, pointing
 * into `text` (modified in place). */
static scl_err split_layering(char *text, char **files, int *nf, char **ovr, int *no, int cap) {
  *nf = *no = 0;
  for (char *line = text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    if (*nf + *no >= cap || strlen(line) < 3 || line[1] != ' ' ||
        (line[0] != 'F' && line[0] != 'O'))
      return SCL_ERROR(SCL_ERR_FORMAT, "malformed trial layering line '%s'", line);
    if (line[0] == 'F')
      files[(*nf)++] = line + 2;
    else
      ovr[(*no)++] = line + 2;
    line = nl ? nl + 1 : NULL;
  }
  return SCL_OK;
}

/* Testing aid: SAFECL_FAULT_TRIAL_ERROR=<io|numeric|arg|nomem|resource>:<attempts>[:<text>] makes the
 * first <attempts> attempts of every trial whose layering contains <text> fail with that code
 * before running, so tests can check retries and permanent failures without broken inputs. */
static scl_err fault_injection(const orch_msg *t) {
  const char *env = getenv("SAFECL_FAULT_TRIAL_ERROR");
  if (!env || !env[0]) return SCL_OK;
  static const struct {
    const char *name;
    scl_err code;
  } codes[] = {{"io", SCL_ERR_IO},
               {"numeric", SCL_ERR_NUMERIC},
               {"arg", SCL_ERR_ARG},
               {"nomem", SCL_ERR_NOMEM},
               {"resource", SCL_ERR_RESOURCE}};
  const char *c1 = strchr(env, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  int attempts = c1 ? atoi(c1 + 1) : 1000000;
  if (c2 && (!t->text || !strstr(t->text, c2 + 1))) return SCL_OK;
  if (t->attempt > attempts) return SCL_OK;
  size_t n = c1 ? (size_t)(c1 - env) : strlen(env);
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (strlen(codes[i].name) == n && !strncmp(env, codes[i].name, n))
      return SCL_ERROR(codes[i].code, "fault injection: %s on attempt %d", codes[i].name,
                       t->attempt);
  return SCL_OK;
}

/* Testing aid: SAFECL_FAULT_TRIAL_SIGNAL=<segv|abrt|kill|stop|hold>[:<text>] makes every rank
 * that runs a trial whose layering contains <text> raise that signal just before the trial starts:
 * segv and abrt are crashes the trial's process sees (and records), kill is a death it cannot
 * see, stop freezes it until the test kills the whole job from outside. hold raises nothing: a
 * trial without a checkpoint in `trial_dir` waits until the rank has caught a stop signal
 * (signals.c), which SIGCONT does not end, so a test signals a sweep whose trials are certainly
 * still to run, on a machine of any speed; the resumed trial, in the requeued job, runs. */
static void fault_signal(const orch_msg *t, const char *trial_dir) {
  const char *env = getenv("SAFECL_FAULT_TRIAL_SIGNAL");
  if (!env || !env[0]) return;
  const char *c1 = strchr(env, ':');
  if (c1 && (!t->text || !strstr(t->text, c1 + 1))) return;
  size_t n = c1 ? (size_t)(c1 - env) : strlen(env);
  if (n == 4 && !strncmp(env, "hold", 4)) {
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt.h5", trial_dir);
    if (access(ckpt, F_OK) == 0) return;
    SCL_WARN("fault injection: holding trial %s until a signal", t->id);
    const struct timespec tick = {0, 10000000};
    while (!orch_signals_caught()) nanosleep(&tick, NULL);
    return;
  }
  static const struct {
    const char *name;
    int sig;
  } sigs[] = {{"segv", SIGSEGV}, {"abrt", SIGABRT}, {"kill", SIGKILL}, {"stop", SIGSTOP}};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (strlen(sigs[i].name) == n && !strncmp(env, sigs[i].name, n)) {
      SCL_WARN("fault injection: raising %s before trial %s", sigs[i].name, t->id);
      raise(sigs[i].sig);
    }
}

/* From here until the attempt ends, a fatal signal leaves a CRASHED record in RUN_DIR, the
 * sweep's run directory (the trial's run.dir is RUN_DIR/trials/<id>: orch_plan_args). */
static scl_err arm_crash_record(worker *w, const char *trial_dir) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", trial_dir);
  const char *id = w->trial->id;
  size_t n = strlen(dir), k = strlen(id);
  SCL_CHECK(n > k + 8 && !strcmp(dir + n - k, id) && !strncmp(dir + n - k - 8, "/trials/", 8),
            SCL_ERR_INTERNAL, "trial %s: run.dir '%s' is not RUN_DIR/trials/<id>", id, trial_dir);
  dir[n - k - 8] = '\0';
  SCL_CALL(orch_crash_arm(dir, id, w->group_id, w->trial->attempt, w->trial->seconds,
                          dist_comm_rank(w->world), &w->boundaries));
  return SCL_OK;
}

/* Loads, checks the identity of and runs the trial; fills res (status, numbers). */
static scl_err run_trial_of(worker *w, char *layering, orch_msg *res) {
  char *files[512], *ovr[512];
  int nf = 0, no = 0;
  SCL_CALL(split_layering(layering, files, &nf, ovr, &no, 512));
  run_trial_cfg cfg = {0};
  char id[33] = "";
  run_trial_result r = {0};
  run_trial_hooks hooks = {should_stop, w};
  scl_err err = cfg_load_files(&run_trial_schema, (const char *const *)files, nf, no, ovr, &cfg);
  if (!err) err = run_trial_identity(&cfg, id);
  if (!err && strcmp(id, w->trial->id))
    err = SCL_ERROR(SCL_ERR_ARG,
                    "trial %s now has identity %s: its config files changed since "
                    "the sweep was planned; rerun the sweep",
                    w->trial->id, id);
  if (!err && w->leader) orch_rundir_remove_temporaries(cfg.run_dir);
  if (!err) err = arm_crash_record(w, cfg.run_dir);
  if (!err) fault_signal(w->trial, cfg.run_dir);
  if (!err) err = fault_injection(w->trial);
  if (!err) err = run_trial_ex(&cfg, w->group, &hooks, &r);
  orch_crash_disarm();
  cfg_free(&run_trial_schema, &cfg);
  res->skipped = r.skipped;
  res->seconds = r.seconds;
  res->final_acc = r.final_acc;
  res->avg_acc = r.avg_acc;
  res->val_acc = r.val_acc;
  return err;
}

static scl_err run_one(worker *w, const orch_msg *trial, orch_msg *res) {
  orch_msg_clear(res);
  *res = (orch_msg){.type = ORCH_MSG_RESULT,
                    .group = w->group_id,
                    .trial = trial->trial,
                    .attempt = trial->attempt};
  memcpy(res->id, trial->id, sizeof res->id);
  w->trial = trial;
  w->boundaries = 0;
  w->halted = 0;
  w->comm_err = SCL_OK;
  if (trial->flags & ORCH_FLAG_DRY_RUN) return SCL_OK;
  char *layering = strdup(trial->text ? trial->text : "");
  SCL_CHECK(layering, SCL_ERR_NOMEM, "trial layering");
  scl_error_clear(); /* a trial starts with nothing pending: its first failure is the root cause */
  scl_err err = run_trial_of(w, layering, res);
  free(layering);
  if (w->comm_err) return w->comm_err; /* the group lost the coordinator: fatal */
  if (err && err != SCL_ERR_STOP) scl_log_error_traceback();
  err = dist_agree(w->group, err); /* one verdict per group */
  if (err == SCL_ERR_MPI) return err;
  res->status = err;
  char msg[SCL_ERROR_MESSAGE_MAX];
  scl_error_take(msg, sizeof msg); /* the failure is the trial's, reported in the result */
  if (err) SCL_CALL(orch_msg_set_text(res, msg));
  return SCL_OK;
}

scl_err orch_worker_run(const dist_comm *world, const dist_comm *group, int group_id,
                        int *exit_code) {
  const char *interval = getenv("SAFECL_PROGRESS_INTERVAL");
  worker w = {.world = world,
              .group = group,
              .group_id = group_id,
              .leader = dist_comm_rank(group) == 0,
              .interval = interval ? atof(interval) : 1.0};
  orch_msg out = {.type = ORCH_MSG_HELLO, .group = group_id}, in = {0};
  scl_err err = SCL_OK;
  *exit_code = 1;
  orch_crash_install();
  for (;;) {
    out.latency = w.latency;
    SCL_CALL_GOTO(err, exchange(&w, &out, &in), done);
    if (out.type == ORCH_MSG_HELLO) w.latency = 0; /* includes the coordinator's planning */
    if (in.type == ORCH_MSG_EXIT) {
      *exit_code = in.exit_code;
      break;
    }
    SCL_CHECK_GOTO(err, done, in.type == ORCH_MSG_TRIAL, SCL_ERR_INTERNAL,
                   "group %d: unexpected %s from the coordinator", group_id,
                   orch_msg_name(in.type));
    SCL_CALL_GOTO(err, run_one(&w, &in, &out), done);
  }
done:
  orch_msg_clear(&out);
  orch_msg_clear(&in);
  return err;
}
