/* log.c: rank- and trial-aware logging to stderr, to a trial's own log file, and a live status
 * line on a terminal.
 *
 * One line per call, "2026-12-01T20:06:44.123Z [safecl r<rank> <trial>] level: message": the
 * time in UTC (ISO 8601, milliseconds, a trailing Z), written with a single fprintf so that lines
 * from different ranks sharing a terminal or a SLURM output file interleave whole. The level
 * comes from SAFECL_LOG at first use unless set explicitly. A failure is reported as its message;
 * the traceback's code locations are added at level debug (SAFECL_LOG=debug).
 *
 * While a log file is open (scl_log_open_file: a trial's run.dir/trial.log) every line that
 * reaches stderr is appended to it too, flushed per line so that a killed process leaves whole
 * lines. A status line (scl_log_status) exists only when stderr is a terminal: it is redrawn in
 * place with a carriage return, cleared before every log line and drawn again after it, and
 * never written to the log file. When stderr is not a terminal no control character is
 * written. */
#include "safecl/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int log_rank = -1;
static char log_trial[40];
static int log_level = -1;
static FILE *log_file;
static char log_file_path[4096];
static char log_status[512]; /* the status line on screen ("" if none) */

void scl_log_set_rank(int rank) { log_rank = rank; }

void scl_log_set_trial(const char *trial_id) {
  if (!trial_id) {
    log_trial[0] = '\0';
    return;
  }
  snprintf(log_trial, sizeof log_trial, "%s", trial_id);
}

void scl_log_set_level(scl_log_level level) { log_level = (int)level; }

scl_log_level scl_log_get_level(void) {
  if (log_level < 0) {
    const char *env = getenv("SAFECL_LOG");
    log_level = SCL_LOG_INFO;
    if (env) {
      if (!strcasecmp(env, "debug"))
        log_level = SCL_LOG_DEBUG;
      else if (!strcasecmp(env, "warn"))
        log_level = SCL_LOG_WARN;
      else if (!strcasecmp(env, "error"))
        log_level = SCL_LOG_ERROR;
      else if (!strcasecmp(env, "quiet"))
        log_level = SCL_LOG_QUIET;
    }
  }
  return (scl_log_level)log_level;
}

int scl_log_tty(void) { return isatty(STDERR_FILENO); }

/* "2026-12-01T20:06:44.123Z" (UTC) into buf (at least 32 bytes). */
static void timestamp(char *buf, size_t cap) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, cap - n, ".%03ldZ", (long)(ts.tv_nsec / 1000000));
}

/* Appends one line to the log file; a failed write closes the file with a warning on stderr,
 * so a full disk costs the trial's log, not the trial. */
static void file_line(const char *line) {
  if (!log_file) return;
  if (fputs(line, log_file) < 0 || fflush(log_file) != 0) {
    int e = errno;
    fclose(log_file);
    log_file = NULL; /* before the warning, which would otherwise come back here */
    scl_log(SCL_LOG_WARN, "%s: write failed (%s); the rest of this log is on stderr only",
            log_file_path, strerror(e));
  }
}

/* The status line, cut to the terminal's width so that it never wraps (a wrapped line cannot be
 * redrawn with a carriage return). */
static void draw_status(void) {
  if (!log_status[0]) return;
  struct winsize ws;
  int width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col - 1 : 79;
  fprintf(stderr, "\r%.*s\033[K", width, log_status);
  fflush(stderr);
}

static void emit(scl_log_level level, int to_stderr, const char *fmt, va_list ap) {
  static const char *const names[] = {"debug", "info", "warning", "error", ""};
  char prefix[160], stamp[48];
  timestamp(stamp, sizeof stamp);
  size_t n = (size_t)snprintf(prefix, sizeof prefix, "%s [safecl", stamp);
  if (log_rank >= 0) n += (size_t)snprintf(prefix + n, sizeof prefix - n, " r%d", log_rank);
  if (log_trial[0]) snprintf(prefix + n, sizeof prefix - n, " %.12s", log_trial);
  char msg[4096], line[4400];
  vsnprintf(msg, sizeof msg, fmt, ap);
  snprintf(line, sizeof line, "%s] %s: %s\n", prefix, names[level], msg);
  if (to_stderr) {
    if (log_status[0]) fputs("\r\033[K", stderr);
    fputs(line, stderr);
    draw_status();
  }
  file_line(line);
}

void scl_log(scl_log_level level, const char *fmt, ...) {
  if (level < scl_log_get_level()) return;
  va_list ap;
  va_start(ap, fmt);
  emit(level, 1, fmt, ap);
  va_end(ap);
}

void scl_log_file(scl_log_level level, const char *fmt, ...) {
  if (!log_file || level < scl_log_get_level()) return;
  va_list ap;
  va_start(ap, fmt);
  emit(level, 0, fmt, ap);
  va_end(ap);
}

void scl_log_status(const char *text) {
  if (!text) {
    if (log_status[0]) {
      fputs("\r\033[K", stderr);
      fflush(stderr);
    }
    log_status[0] = '\0';
    return;
  }
  if (!scl_log_tty() || scl_log_get_level() > SCL_LOG_INFO) return;
  snprintf(log_status, sizeof log_status, "%s", text);
  draw_status();
}

scl_err scl_log_open_file(const char *path) {
  scl_log_close_file();
  FILE *f = fopen(path, "a");
  SCL_CHECK(f, SCL_ERR_IO, "%s: cannot open the log file for appending: %s", path, strerror(errno));
  log_file = f;
  snprintf(log_file_path, sizeof log_file_path, "%s", path);
  return SCL_OK;
}

void scl_log_close_file(void) {
  if (!log_file) return;
  FILE *f = log_file;
  log_file = NULL;
  if (fclose(f) != 0) SCL_WARN("%s: close failed (%s)", log_file_path, strerror(errno));
}

/* The message on one line; a failure met while handling it on a line of its own; the code
 * locations ("  at file:line func") only at level debug, since they are for whoever debugs
 * safecl, not for a user fixing a config. */
void scl_log_error_traceback(void) {
  scl_log_status(NULL); /* the frames are written below the message, not after a status line */
  const char *msg = scl_error_message();
  scl_log(SCL_LOG_ERROR, "%s", msg[0] ? msg : "unknown failure");
  if (scl_log_get_level() > SCL_LOG_ERROR) return;
  int frames = scl_log_get_level() <= SCL_LOG_DEBUG;
  for (const char *line = scl_error_traceback(); *line;) {
    const char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
    if (frames || strncmp(line, "  at ", 5)) fwrite(line, 1, len, stderr);
    line += len;
  }
}
