/* rundir.c: the run directory: creation, the one-sweep-at-a-time lock, this job's name, and
 * reading a finished trial's numbers back from its trial.h5.
 *
 * The lock is an fcntl lock on RUN_DIR/lock, held by world rank 0 for the job's life and released
 * by the kernel when the process dies, so a SIGKILLed job never leaves a stale lock. Filesystems
 * without POSIX locks (some NFS mounts) get a warning, not a refusal: the lock guards against a
 * user's mistake (two sweeps on one directory), not against anything safecl does itself. */
#include <errno.h>
#include <fcntl.h>
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

static scl_err take_lock(orch_rundir *rd) {
  char path[4200], holder[512] = "";
  snprintf(path, sizeof path, "%s/lock", rd->path);
  /* O_NOFOLLOW: the holder line is written into this file, never into a symlink's target. */
  rd->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  SCL_CHECK(rd->lock_fd >= 0 || errno != ELOOP, SCL_ERR_IO,
            "%s: is a symbolic link; refusing to write through it (remove it)", path);
  SCL_CHECK(rd->lock_fd >= 0, SCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(rd->lock_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(rd->lock_fd);
    rd->lock_fd = -1;
    return SCL_ERROR(SCL_ERR_IO, "%s: not a regular file; refusing to use it as the lock", path);
  }
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(rd->lock_fd, F_SETLK, &fl) != 0) {
    if (errno == EACCES || errno == EAGAIN) {
      ssize_t n = pread(rd->lock_fd, holder, sizeof holder - 1, 0);
      holder[n > 0 ? n : 0] = '\0';
      holder[strcspn(holder, "\n")] = '\0';
      close(rd->lock_fd);
      rd->lock_fd = -1;
      return SCL_ERROR(SCL_ERR_ARG,
                       "%s is in use by another sweep (%s); wait for it or use "
                       "another run.dir",
                       rd->path, holder[0] ? holder : "holder unknown");
    }
    SCL_WARN("%s: file locks unsupported here (%s); make sure only one sweep uses %s", path,
             strerror(errno), rd->path);
  }
  char host[256] = "?";
  gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';
  int n =
      snprintf(holder, sizeof holder, "host %s pid %ld job %s\n", host, (long)getpid(), rd->job_id);
  if (ftruncate(rd->lock_fd, 0) != 0 || pwrite(rd->lock_fd, holder, (size_t)n, 0) != n)
    SCL_WARN("%s: cannot record the lock holder: %s", path, strerror(errno));
  return SCL_OK;
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
  SCL_CALL(take_lock(rd));
  return SCL_OK;
}

void orch_rundir_close(orch_rundir *rd) {
  if (rd->lock_fd >= 0) close(rd->lock_fd); /* releases the lock */
  rd->lock_fd = -1;
}

void orch_rundir_trial(const char *run_dir, const char *id, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/trials/%s", run_dir, id);
}

int orch_rundir_finished(const char *run_dir, const char *id) {
  char path[4300];
  snprintf(path, sizeof path, "%s/trials/%s/trial.h5", run_dir, id);
  return access(path, F_OK) == 0;
}

scl_err orch_rundir_read_result(const char *run_dir, const char *id, double *final_acc,
                                double *avg_acc, double *val_acc, double *seconds) {
  char path[4300];
  snprintf(path, sizeof path, "%s/trials/%s/trial.h5", run_dir, id);
  h5_file *f = NULL;
  char *got = NULL;
  SCL_CALL(h5_file_open_read(path, &f));
  scl_err err = h5_check_schema(f, RUN_TRIAL_SCHEMA_VERSION, "trial results");
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
