/* orch_test.h: helpers of the orchestrator's C tests: a CHECK that counts failures, CHECK_OK for
 * calls that must succeed, CHECK_FAILS for calls that must fail with a code and a message
 * containing given text, and a fresh scratch directory. */
#ifndef SAFECL_TESTS_ORCH_TEST_H
#define SAFECL_TESTS_ORCH_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safecl/core.h"

#include "../common/scl_check.h"

/* expr must fail with `code` and a message containing `text`; prints the message. */
#define CHECK_FAILS(expr, code, text)                                                       \
  do {                                                                                      \
    scl_error_clear();                                                                      \
    scl_err check_fails_err_ = (expr);                                                      \
    const char *check_fails_msg_ = scl_error_message();                                     \
    if (check_fails_err_ != (code) || !strstr(check_fails_msg_, (text))) {                  \
      failures++;                                                                           \
      fprintf(stderr, "FAIL %s:%d: %s returned %s '%s'; expected %s with '%s'\n", __FILE__, \
              __LINE__, #expr, scl_error_name(check_fails_err_), check_fails_msg_,          \
              scl_error_name(code), (text));                                                \
    } else {                                                                                \
      printf("  expected failure: %s\n", check_fails_msg_);                                 \
    }                                                                                       \
    scl_error_clear();                                                                      \
  } while (0)

/* A fresh directory ./<name>.<pid> under the test's working directory (removed first). */
static inline void scratch_dir(const char *name, char *out, size_t cap) {
  snprintf(out, cap, "%s.%ld", name, (long)getpid());
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not clear %s\n", out);
  mkdir(out, 0777);
}

static inline void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "FAIL: cannot write %s\n", path);
    failures++;
    return;
  }
  fputs(text, f);
  fclose(f);
}

static inline int finish(const char *name) {
  if (failures)
    fprintf(stderr, "%s: %d failure(s)\n", name, failures);
  else
    printf("%s: all checks passed\n", name);
  return failures ? 1 : 0;
}

#endif /* SAFECL_TESTS_ORCH_TEST_H */
