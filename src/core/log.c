/* log.c: rank- and trial-aware logging to stderr.
 *
 * One line per call, written with a single fprintf so that lines from different ranks sharing
 * a terminal or a SLURM output file interleave whole. The level comes from SAFECL_LOG at first
 * use unless set explicitly. A failure is reported as its message; the traceback's code locations
 * are added at level debug (SAFECL_LOG=debug). */
#include "safecl/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int log_rank = -1;
static char log_trial[40];
static int log_level = -1;

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

void scl_log(scl_log_level level, const char *fmt, ...) {
  if (level < scl_log_get_level()) return;
  static const char *const names[] = {"debug", "info", "warning", "error", ""};
  char prefix[96];
  size_t n = (size_t)snprintf(prefix, sizeof prefix, "[safecl");
  if (log_rank >= 0) n += (size_t)snprintf(prefix + n, sizeof prefix - n, " r%d", log_rank);
  if (log_trial[0]) snprintf(prefix + n, sizeof prefix - n, " %.12s", log_trial);
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s] %s: %s\n", prefix, names[level], msg);
}

/* The message on one line; a failure met while handling it on a line of its own; the code
 * locations ("  at file:line func") only at level debug, since they are for whoever debugs
 * safecl, not for a user fixing a config. */
void scl_log_error_traceback(void) {
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
