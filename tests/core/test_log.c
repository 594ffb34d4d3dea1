/* test_log.c: the log lines of src/core/log.c: every line starts with an ISO 8601 UTC time with
 * milliseconds and a trailing Z (also with TZ set to a zone far from UTC), then the rank and
 * trial tag; scl_log_open_file copies every line to a file and appends to an existing one;
 * scl_log_file writes to the file only; an unopenable log file is SCL_ERR_IO naming it; the
 * status line writes nothing when stderr is not a terminal, and on a pseudo-terminal it is
 * drawn with "\r" and erase-to-end-of-line, cleared before a log line and drawn again after it,
 * and never reaches the log file. Exits non-zero on any failure. */
#define _XOPEN_SOURCE 700 /* posix_openpt, strptime */
#define _DEFAULT_SOURCE   /* timegm */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "safecl/core.h"

#include "../common/scl_check.h"

static char dir[] = "/tmp/scl_test_log_XXXXXX";

/* Runs f with stderr sent to `path`, then restores it. */
static void with_stderr(const char *path, void (*f)(void)) {
  fflush(stderr);
  int saved = dup(STDERR_FILENO), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, STDERR_FILENO);
  close(fd);
  f();
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
}

static void slurp(const char *path, char *buf, size_t cap) {
  buf[0] = '\0';
  FILE *f = fopen(path, "r");
  if (!f) return;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
}

/* Seconds between the line's leading "YYYY-MM-DDTHH:MM:SS.mmmZ" read as UTC and now, or 1e9 if
 * the line does not start with one. */
static double stamp_age(const char *line) {
  struct tm tm = {0};
  const char *end = strptime(line, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end || end - line != 19 || end[0] != '.' || end[4] != 'Z' || end[5] != ' ') return 1e9;
  for (int i = 1; i <= 3; i++)
    if (end[i] < '0' || end[i] > '9') return 1e9;
  return difftime(time(NULL), timegm(&tm));
}

static void log_three(void) {
  scl_log_set_rank(3);
  scl_log_set_trial("0123456789abcdef0123456789abcdef");
  SCL_INFO("first %d", 1);
  scl_log_file(SCL_LOG_INFO, "file only");
  scl_log_status("a status line"); /* stderr is a file: nothing */
  SCL_WARN("second");
  scl_log_status(NULL);
  scl_log_set_rank(-1);
  scl_log_set_trial(NULL);
  SCL_INFO("third");
}

static void test_lines_and_file(void) {
  char err_path[128], log_path[128], out[8192], file[8192];
  snprintf(err_path, sizeof err_path, "%s/stderr", dir);
  snprintf(log_path, sizeof log_path, "%s/trial.log", dir);
  setenv("TZ", "Asia/Kolkata", 1); /* UTC+05:30: a local time would be hours off */
  tzset();
  CHECK_OK(scl_log_open_file(log_path));
  with_stderr(err_path, log_three);
  scl_log_close_file();
  slurp(err_path, out, sizeof out);
  slurp(log_path, file, sizeof file);
  const char *l1 = out, *l2 = strchr(l1, '\n'), *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
  int lines = 0;
  for (const char *c = out; *c; c++) lines += *c == '\n';
  CHECK(lines == 3 && l2 && l3, "three lines on stderr:\n%s", out);
  CHECK(stamp_age(l1) >= -5 && stamp_age(l1) < 300, "first line's UTC time: %s", out);
  CHECK(strstr(l1, "Z [safecl r3 0123456789ab] info: first 1\n") == l1 + 23, "first line: %s", out);
  CHECK(l2 && strstr(l2 + 1, "Z [safecl r3 0123456789ab] warning: second\n") == l2 + 24,
        "second line: %s", out);
  CHECK(l3 && stamp_age(l3 + 1) < 300 && strstr(l3 + 1, "Z [safecl] info: third\n") == l3 + 24,
        "third line: %s", out);
  CHECK(!strchr(out, '\r') && !strchr(out, '\033'), "no control characters off a terminal");
  CHECK(!strstr(out, "file only") && strstr(file, "Z [safecl r3 0123456789ab] info: file only\n"),
        "scl_log_file: the file only:\n%s", file);
  CHECK(!strncmp(file, out, (size_t)(l2 - out + 1)) && strstr(file, l2 + 1) &&
            !strstr(file, "status"),
        "the file holds the lines logged while it was open:\n%s", file);
  /* a second open appends */
  size_t before = strlen(file);
  CHECK_OK(scl_log_open_file(log_path));
  with_stderr(err_path, log_three);
  scl_log_close_file();
  char again[8192];
  slurp(log_path, again, sizeof again);
  CHECK(strlen(again) > before && !strncmp(again, file, before), "a reopened log is appended");
  scl_error_clear();
  CHECK(scl_log_open_file("/nonexistent-dir/trial.log") == SCL_ERR_IO &&
            strstr(scl_error_message(), "/nonexistent-dir/trial.log"),
        "an unopenable log file names it: %s", scl_error_message());
  scl_error_clear();
  unlink(err_path);
  unlink(log_path);
}

/* stderr on a pseudo-terminal: what the status line writes. */
static void test_terminal(void) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  CHECK(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0, "pseudo-terminal");
  if (master < 0) return;
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  char log_path[128];
  snprintf(log_path, sizeof log_path, "%s/tty.log", dir);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  dup2(slave, STDERR_FILENO);
  close(slave);
  int tty = scl_log_tty();
  CHECK_OK(scl_log_open_file(log_path));
  scl_log_status("S 1/2 E 1/3 [####....]");
  SCL_INFO("between");
  scl_log_status(NULL);
  scl_log_close_file();
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  char out[4096] = {0}, file[4096];
  size_t got = 0; /* every end of the slave is closed: read to EOF (EIO on Linux) */
  for (ssize_t n; got < sizeof out - 1 && (n = read(master, out + got, sizeof out - 1 - got)) > 0;)
    got += (size_t)n;
  out[got] = '\0';
  close(master);
  slurp(log_path, file, sizeof file);
  CHECK(tty, "scl_log_tty on a pseudo-terminal");
  const char *draw = strstr(out, "\rS 1/2 E 1/3 [####....]\033[K");
  const char *line = strstr(out, "\r\033[K");
  const char *msg = strstr(out, "info: between");
  const char *redraw = msg ? strstr(msg, "\rS 1/2 E 1/3 [####....]\033[K") : NULL;
  CHECK(draw && line && msg && draw < line && line < msg && redraw,
        "status drawn, cleared before the log line, drawn again after it: %s", out);
  CHECK(strstr(file, "info: between") && !strstr(file, "S 1/2") && !strchr(file, '\r'),
        "the log file holds the line, never the status line: %s", file);
  unlink(log_path);
}

int main(void) {
  if (!mkdtemp(dir)) {
    fprintf(stderr, "test_log: no temporary directory\n");
    return 1;
  }
  scl_log_set_level(SCL_LOG_INFO);
  test_lines_and_file();
  test_terminal();
  rmdir(dir);
  if (failures) {
    fprintf(stderr, "test_log: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_log: all checks passed\n");
  return 0;
}
