/* error.c: the root-cause message and traceback of the current failure.
 *
 * The first SCL_ERROR since the last clear records the message; each SCL_CALL frame on the way
 * up appends "  at file:line func". A second SCL_ERROR while one is pending (a cleanup path that
 * fails too) is appended as a secondary note rather than replacing the root cause. State is
 * thread-local so that worker threads cannot garble each other's messages. Buffers are fixed
 * size and truncate: reporting an error must never itself fail. */
#include "safecl/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SCL_ERR_MSG_MAX SCL_ERROR_MESSAGE_MAX
#define SCL_ERR_TRACE_MAX 8192

static _Thread_local char err_message[SCL_ERR_MSG_MAX];
static _Thread_local char err_trace[SCL_ERR_TRACE_MAX];
static _Thread_local size_t err_trace_len;
static _Thread_local scl_err err_code;

static void trace_append(const char *fmt, ...) SCL_PRINTF(1, 2);
static void trace_append(const char *fmt, ...) {
  if (err_trace_len >= sizeof err_trace - 1) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err_trace + err_trace_len, sizeof err_trace - err_trace_len, fmt, ap);
  va_end(ap);
  if (n > 0) {
    err_trace_len += (size_t)n;
    if (err_trace_len > sizeof err_trace - 1) err_trace_len = sizeof err_trace - 1;
  }
}

static const char *file_base(const char *file) {
  const char *s = strstr(file, "src/");
  if (!s) s = strstr(file, "tests/");
  return s ? s : file;
}

scl_err scl_error_raise(scl_err code, const char *file, int line, const char *func, const char *fmt,
                        ...) {
  char msg[SCL_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (err_code == SCL_OK) {
    err_code = code;
    snprintf(err_message, sizeof err_message, "%s", msg);
    err_trace_len = 0;
    err_trace[0] = '\0';
  } else {
    trace_append("  (while handling it: %s)\n", msg);
  }
  trace_append("  at %s:%d %s\n", file_base(file), line, func);
  return code;
}

scl_err scl_error_trace(scl_err code, const char *file, int line, const char *func) {
  if (err_code == SCL_OK) { /* a failure that bypassed SCL_ERROR: still say where */
    err_code = code;
    snprintf(err_message, sizeof err_message, "%s", scl_error_name(code));
  }
  trace_append("  at %s:%d %s\n", file_base(file), line, func);
  return code;
}

const char *scl_error_message(void) { return err_message; }

const char *scl_error_traceback(void) { return err_trace; }

scl_err scl_error_take(char *message, size_t size) {
  scl_err code = err_code;
  if (message && size > 0) snprintf(message, size, "%s", err_message);
  scl_error_clear();
  return code;
}

void scl_error_clear(void) {
  err_code = SCL_OK;
  err_message[0] = '\0';
  err_trace[0] = '\0';
  err_trace_len = 0;
}

scl_err scl_errno_code(int errnum) {
  return errnum == ENOSPC || errnum == EDQUOT || errnum == EIO || errnum == ENOMEM
             ? SCL_ERR_RESOURCE
             : SCL_ERR_IO;
}

const char *scl_error_name(scl_err code) {
  static const char *const names[SCL_ERR_COUNT] = {"ok",
                                                   "out of memory",
                                                   "I/O error",
                                                   "malformed input",
                                                   "bad argument",
                                                   "MPI error",
                                                   "HDF5 error",
                                                   "LAPACK error",
                                                   "non-finite value",
                                                   "stop requested",
                                                   "internal error",
                                                   "resource fault"};
  if (code < 0 || code >= SCL_ERR_COUNT) return "unknown error";
  return names[code];
}

int scl_mul_overflows(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }

int scl_add_overflows(size_t a, size_t b, size_t *out) { return __builtin_add_overflow(a, b, out); }
