/* scl_check.h: the assertion helpers every C test shares (one copy): a failure counter, CHECK
 * (condition + printf-style message, counts and prints, never aborts so a test reports every
 * failure), and CHECK_OK for calls that must succeed (prints the error and its traceback). A
 * test's main returns non-zero when `failures` is non-zero. */
#ifndef SAFECL_TESTS_SCL_CHECK_H
#define SAFECL_TESTS_SCL_CHECK_H

#include <stdio.h>

#include "safecl/core.h"

static int failures;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
    }                                                      \
  } while (0)

#define CHECK_OK(expr)                                                                    \
  do {                                                                                    \
    scl_error_clear();                                                                    \
    scl_err check_ok_err_ = (expr);                                                       \
    if (check_ok_err_ != SCL_OK) {                                                        \
      failures++;                                                                         \
      fprintf(stderr, "FAIL %s:%d: %s returned %s: %s\n%s", __FILE__, __LINE__, #expr,    \
              scl_error_name(check_ok_err_), scl_error_message(), scl_error_traceback()); \
    }                                                                                     \
  } while (0)

#endif /* SAFECL_TESTS_SCL_CHECK_H */
