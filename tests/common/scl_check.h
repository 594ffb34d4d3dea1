/* scl_check.h: the assertion helpers every C test shares (one copy): a failure counter, CHECK
 * (condition + printf-style message, counts and prints, never aborts so a test reports every
 * failure), CHECK_OK for calls that must succeed (prints the error and its traceback) and
 * check_refused for calls that must fail with a message naming what is wrong. A test's main
 * returns non-zero when `failures` is non-zero. */
#ifndef SAFECL_TESTS_SCL_CHECK_H
#define SAFECL_TESTS_SCL_CHECK_H

#include <stdio.h>
#include <string.h>

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

/* Expects `got` to be a failure whose message holds every non-NULL needle; prints the message
 * and clears the error. */
static inline void check_refused(scl_err got, const char *what, const char *n1, const char *n2,
                                 const char *n3) {
  const char *msg = scl_error_message();
  printf("  %-36s -> %s: %s\n", what, scl_error_name(got), msg);
  CHECK(got != SCL_OK, "%s: accepted", what);
  const char *needles[3] = {n1, n2, n3};
  for (int i = 0; i < 3; i++)
    CHECK(!needles[i] || strstr(msg, needles[i]), "%s: message lacks '%s': %s", what, needles[i],
          msg);
  scl_error_clear();
}

#endif /* SAFECL_TESTS_SCL_CHECK_H */
