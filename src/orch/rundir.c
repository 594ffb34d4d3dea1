/* rundir.c: the run directory: creation, the one-job-at-a-time lock, this job's name, the
 * listing of trials/ (one readdir, so that 10^6 planned trials cost no stat each), and reading a
 * finished trial's numbers back from its trial.h5.
 *
 * The lock is an fcntl lock on RUN_DIR/lock, held by world rank 0 for the job's life and released
 * by the kernel when the process dies, so a SIGKILLed job never leaves a stale lock. Filesystems
 * without POSIX locks (some NFS mounts) get a warning, not a refusal: the lock guards against a
 * user's mistake (two sweeps, or two `safecl train`, on one directory), not against anything
 * safecl does itself. A sweep's workers run their trials in RUN_DIR/trials/<id> under the
 * coordinator's lock; `safecl train` takes the same lock on its own run.dir (orch_run_lock), so a
 * second train of that directory refuses at once, while the trains of an array job
 * (jobs/array.sbatch: each in its own trials/<id>) run side by side.
 *
 * Heartbeat: while a process holds the lock, a thread of its own sets the lock file's mtime every
 * ORCH_HEARTBEAT_SECONDS (recorded in the holder line), so `safecl status` on any host tells a
 * live job from a dead one by the file's age; on a filesystem with POSIX locks it asks the kernel
 * whether the lock is still held (F_GETLK, which takes nothing), and on the holder's own host
 * whether its pid still exists (kill(pid, 0)). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "orch_internal.h"
#include "safecl/h5.h"
#include "safecl/publish.h"

static void job_name(orch_rundir *rd) {
  const char *job = getenv("SLURM_JOB_ID"), *restart = getenv("SLURM_RESTART_COUNT");
  rd->restart = restart ? atoll(restart) : 0;
  if (job && job[0]) {
    snprintf(rd->job_id, sizeof rd->job_id, "%s", job);
  } else {
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(rd->job_id, sizeof rd->job_id, "local-%s-%ld", stamp, (long)getpid());
  }
  for (char *p = rd->job_id; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          *p == '-' || *p == '_'))
      *p = '_';
}

/* Takes the write lock on RUN_DIR/lock into *fd and records `holder_text` in the file, or fails
 * naming the holder: the text recorded there and its pid as the kernel reports it. */
static scl_err take_lock(const char *run_dir, const char *holder_text, int *fd) {
  char path[4200], holder[512] = "";
  snprintf(path, sizeof path, "%s/lock", run_dir);
  /* O_NOFOLLOW: the holder line is written into this file, never into a symlink's target. */
  *fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  SCL_CHECK(*fd >= 0 || errno != ELOOP, SCL_ERR_IO,
            "%s: is a symbolic link; refusing to write through it (remove it)", path);
  SCL_CHECK(*fd >= 0, SCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(*fd);
    *fd = -1;
    return SCL_ERROR(SCL_ERR_IO, "%s: not a regular file; refusing to use it as the lock", path);
  }
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(*fd, F_SETLK, &fl) != 0) {
    if (errno == EACCES || errno == EAGAIN) {
      struct flock who = fl;
      long pid = fcntl(*fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? (long)who.l_pid : 0;
      ssize_t n = pread(*fd, holder, sizeof holder - 1, 0);
      holder[n > 0 ? n : 0] = '\0';
      holder[strcspn(holder, "\n")] = '\0';
      close(*fd);
      *fd = -1;
      return SCL_ERROR(SCL_ERR_ARG,
                       "%s is in use by another safecl sweep or train (%s%slock held by pid %ld); "
                       "wait for it or use another run.dir",
                       run_dir, holder, holder[0] ? ", " : "", pid);
    }
    SCL_WARN("%s: file locks unsupported here (%s); make sure only one sweep or train uses %s",
             path, strerror(errno), run_dir);
  }
  int n = snprintf(holder, sizeof holder, "%s\n", holder_text);
  if (ftruncate(*fd, 0) != 0 || pwrite(*fd, holder, (size_t)n, 0) != n)
    SCL_WARN("%s: cannot record the lock holder: %s", path, strerror(errno));
  return SCL_OK;
}

/* The heartbeat of the one lock this process holds (a process holds at most one run directory). */
static struct {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int fd, on, stop;
} beat = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .fd = -1};

static void *beat_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&beat.mu);
  while (!beat.stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ORCH_HEARTBEAT_SECONDS;
    while (!beat.stop && pthread_cond_timedwait(&beat.cv, &beat.mu, &until) != ETIMEDOUT) {
    }
    if (!beat.stop) futimens(beat.fd, NULL); /* now; a failure shows as an old heartbeat */
  }
  pthread_mutex_unlock(&beat.mu);
  return NULL;
}

/* Starts the heartbeat on `fd`; a thread that cannot start is a warning (status then sees an
 * old heartbeat but, on the holder's host, a live pid and a held lock). */
static void beat_start(int fd, const char *path) {
  pthread_mutex_lock(&beat.mu);
  beat.fd = fd;
  beat.stop = 0;
  pthread_mutex_unlock(&beat.mu);
  /* The thread must not take the stop signals of signals.c: they are the main thread's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int rc = pthread_create(&beat.thread, NULL, beat_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  beat.on = rc == 0;
  if (rc)
    SCL_WARN("%s: no heartbeat thread (%s): safecl status may call this job dead", path,
             strerror(rc));
}

static void beat_stop(int fd) {
  if (!beat.on || beat.fd != fd) return;
  pthread_mutex_lock(&beat.mu);
  beat.stop = 1;
  pthread_cond_signal(&beat.cv);
  pthread_mutex_unlock(&beat.mu);
  pthread_join(beat.thread, NULL);
  beat.on = 0;
  beat.fd = -1;
}

static void host_name(char *host, size_t cap) {
  snprintf(host, cap, "?");
  gethostname(host, cap);
  host[cap - 1] = '\0';
}

scl_err orch_run_lock(const char *run_dir, const char *what, int *fd) {
  *fd = -1;
  SCL_CHECK(run_dir && run_dir[0], SCL_ERR_ARG, "run.dir is not set");
  SCL_CALL(io_mkdirs(run_dir));
  char host[256], text[600];
  host_name(host, sizeof host);
  snprintf(text, sizeof text, "train %s, host %s pid %ld heartbeat %d s", what, host,
           (long)getpid(), ORCH_HEARTBEAT_SECONDS);
  SCL_CALL(take_lock(run_dir, text, fd));
  beat_start(*fd, run_dir);
  return SCL_OK;
}

/* The holder line gets " ended <UTC time>", so that status tells a process that ended (finished,
 * failed or stopped by a signal) from one that was killed. */
void orch_run_unlock(int *fd) {
  if (*fd < 0) return;
  beat_stop(*fd);
  char line[700] = "", stamp[32];
  ssize_t n = pread(*fd, line, 512, 0);
  line[n > 0 ? n : 0] = '\0';
  line[strcspn(line, "\n")] = '\0';
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  size_t len = strlen(line);
  int k = snprintf(line + len, sizeof line - len, " ended %s\n", stamp);
  if (pwrite(*fd, line, len + (size_t)k, 0) != (ssize_t)(len + (size_t)k))
    SCL_WARN("lock file: cannot record the end of this job: %s", strerror(errno));
  close(*fd); /* releases the lock */
  *fd = -1;
}

scl_err orch_rundir_open(const char *path, orch_rundir *rd) {
  memset(rd, 0, sizeof *rd);
  rd->lock_fd = -1;
  SCL_CHECK(path && path[0], SCL_ERR_ARG,
            "run.dir is not set: give run.dir=DIR on the command line or "
            "run = { dir = \"...\"; } in the sweep file");
  snprintf(rd->path, sizeof rd->path, "%s", path);
  char trials[4200];
  snprintf(trials, sizeof trials, "%s/trials", path);
  SCL_CALL(io_mkdirs(trials));
  job_name(rd);
  char host[256], text[600];
  host_name(host, sizeof host);
  snprintf(text, sizeof text, "sweep job %s, host %s pid %ld heartbeat %d s", rd->job_id, host,
           (long)getpid(), ORCH_HEARTBEAT_SECONDS);
  SCL_CALL(take_lock(rd->path, text, &rd->lock_fd));
  beat_start(rd->lock_fd, rd->path);
  return SCL_OK;
}

void orch_rundir_close(orch_rundir *rd) { orch_run_unlock(&rd->lock_fd); }

void orch_run_liveness(const char *run_dir, orch_liveness *lv) {
  memset(lv, 0, sizeof *lv);
  lv->held = lv->pid_alive = -1;
  char path[4200];
  snprintf(path, sizeof path, "%s/lock", run_dir);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd >= 0) close(fd);
    return;
  }
  lv->present = 1;
  lv->heartbeat = (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
  ssize_t n = pread(fd, lv->holder, sizeof lv->holder - 1, 0);
  lv->holder[n > 0 ? n : 0] = '\0';
  lv->holder[strcspn(lv->holder, "\n")] = '\0';
  struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(fd, F_GETLK, &who) == 0) lv->held = who.l_type != F_UNLCK;
  close(fd);
  const char *h = strstr(lv->holder, "host "), *p = strstr(lv->holder, " pid ");
  const char *b = strstr(lv->holder, " heartbeat ");
  if (h) sscanf(h + 5, "%255s", lv->host);
  if (p) lv->pid = atol(p + 5);
  lv->interval = b ? atoi(b + 11) : 0;
  const char *e = strstr(lv->holder, " ended ");
  if (e) snprintf(lv->ended, sizeof lv->ended, "%.31s", e + 7);
  char here[256];
  host_name(here, sizeof here);
  lv->same_host = lv->host[0] && !strcmp(lv->host, here);
  if (lv->same_host && lv->pid > 0) lv->pid_alive = kill((pid_t)lv->pid, 0) == 0 || errno == EPERM;
  double now = (double)time(NULL), age = now - lv->heartbeat;
  if (lv->held >= 0)
    lv->alive = lv->held && lv->pid_alive != 0;
  else if (lv->pid_alive >= 0)
    lv->alive = lv->pid_alive;
  else
    lv->alive = lv->interval > 0 && age <= 3.0 * lv->interval;
  if (lv->ended[0] && lv->held != 1) lv->alive = 0;
}

/* Leftovers of a trial's publishes that a killed process never committed (ckpt.h5.tmp.<pid>
 * and its .reserve, trial.h5.tmp.<pid>, and the coordinator's trial.cfg.tmp.<pid> and
 * failed.txt.tmp.<pid>): the caller holds the trial's directory, and the coordinator writes its
 * notes there only before it hands the trial out or after the trial's group is done with it, so
 * whoever wrote them is gone. Only those names: a train's run.dir may be any directory of the
 * user's. */
static int is_temporary(const char *name) {
  static const char *const prefix[] = {"ckpt.h5.tmp.", "trial.h5.tmp.", "trial.cfg.tmp.",
                                       "failed.txt.tmp."};
  for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++)
    if (!strncmp(name, prefix[i], strlen(prefix[i]))) return 1;
  return 0;
}

void orch_rundir_remove_temporaries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  char path[4400];
  for (struct dirent *e; (e = readdir(d));) {
    if (!is_temporary(e->d_name)) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path) == 0) SCL_INFO("removed %s, left by a killed process", path);
  }
  closedir(d);
}

void orch_rundir_trial(const char *run_dir, const char *id, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/trials/%s", run_dir, id);
}

int orch_rundir_finished(const char *run_dir, const char *id) {
  char path[4300];
  snprintf(path, sizeof path, "%s/trials/%s/trial.h5", run_dir, id);
  return access(path, F_OK) == 0;
}

static int by_id(const void *a, const void *b) { return strcmp(a, b); }

scl_err orch_trial_dirs_list(const char *run_dir, orch_trial_dirs *d) {
  *d = (orch_trial_dirs){0};
  char path[4200];
  snprintf(path, sizeof path, "%s/trials", run_dir);
  DIR *dir = opendir(path);
  if (!dir) {
    if (errno == ENOENT) return SCL_OK;
    return SCL_ERROR(SCL_ERR_IO, "%s: cannot list: %s", path, strerror(errno));
  }
  int64_t cap = 0;
  scl_err err = SCL_OK;
  for (struct dirent *e; !err && (e = readdir(dir));) {
    if (strlen(e->d_name) != 32) continue; /* trial ids are 32 hex digits */
    if (d->n == cap) {
      cap = cap ? 2 * cap : 256;
      char(*grown)[33] = realloc(d->id, (size_t)cap * sizeof *grown);
      if (!grown) {
        err = SCL_ERROR(SCL_ERR_NOMEM, "listing %s", path);
        break;
      }
      d->id = grown;
    }
    memcpy(d->id[d->n++], e->d_name, 33);
  }
  closedir(dir);
  if (err) {
    orch_trial_dirs_free(d);
    return err;
  }
  if (d->n) qsort(d->id, (size_t)d->n, sizeof *d->id, by_id);
  return SCL_OK;
}

void orch_trial_dirs_free(orch_trial_dirs *d) {
  free(d->id);
  *d = (orch_trial_dirs){0};
}

int orch_trial_dirs_finished(const orch_trial_dirs *d, const char *run_dir, const char *id) {
  if (!d->n || !bsearch(id, d->id, (size_t)d->n, sizeof *d->id, by_id)) return 0;
  return orch_rundir_finished(run_dir, id);
}

scl_err orch_rundir_read_result(const char *run_dir, const char *id, double *final_acc,
                                double *avg_acc, double *val_acc, double *seconds) {
  char path[4300];
  snprintf(path, sizeof path, "%s/trials/%s/trial.h5", run_dir, id);
  h5_file *f = NULL;
  char *got = NULL;
  SCL_CALL(h5_file_open_read(path, &f));
  scl_err err =
      h5_check_schema_range(f, RUN_TRIAL_SCHEMA_OLDEST, RUN_TRIAL_SCHEMA_VERSION, "trial results");
  if (!err) err = h5_attr_read_str(f, NULL, "trial_id", &got);
  if (!err && strcmp(got, id))
    err = SCL_ERROR(SCL_ERR_FORMAT, "%s holds trial %s, not %s", path, got, id);
  if (!err) err = h5_attr_read_f64(f, NULL, "final_acc", final_acc);
  if (!err) err = h5_attr_read_f64(f, NULL, "avg_acc", avg_acc);
  if (!err) err = h5_attr_read_f64(f, NULL, "val_acc", val_acc);
  if (!err) err = h5_attr_read_f64(f, NULL, "seconds_total", seconds);
  free(got);
  scl_err close_err = h5_file_close(&f);
  if (!err) err = close_err;
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}
