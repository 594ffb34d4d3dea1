/* test_publish.c: atomic publication (publish.h). Checks that io_write_file_atomic creates and
 * replaces files with exactly the bytes given and leaves no temporary file; that an aborted
 * publication and a child process killed (_exit) before commit leave an existing destination
 * intact and create nothing where there was nothing; that failures name the path; and that
 * io_mkdirs creates nested directories, accepts existing ones and refuses a file in the way; and
 * that a symlink planted under the temporary name is replaced, its target's bytes left as they were. */
#include <errno.h>
#include <sys/wait.h>

#include "io/io_test.h"
#include "safecl/publish.h"

static void check_contents(const char *path, const char *want) {
  size_t len = 0;
  char *got = read_raw(path, &len);
  CHECK(got && len == strlen(want) && memcmp(got, want, len) == 0, "'%s' holds '%s', expected '%s'",
        path, got ? got : "(missing)", want);
  free(got);
}

static void test_write_atomic(const char *dir) {
  char path[512], tmp[600];
  snprintf(path, sizeof path, "%s/a.txt", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  CHECK_OK(io_write_file_atomic(path, "first", 5));
  check_contents(path, "first");
  CHECK_OK(io_write_file_atomic(path, "second version", 14));
  check_contents(path, "second version");
  CHECK(!file_exists(tmp), "temporary file '%s' left behind", tmp);
  CHECK_OK(io_write_file_atomic(path, "", 0));
  check_contents(path, "");
  printf("write_file_atomic: create, replace, empty: ok\n");
}

static void test_abort(const char *dir) {
  char path[512], fresh[512];
  snprintf(path, sizeof path, "%s/keep.txt", dir);
  snprintf(fresh, sizeof fresh, "%s/never.txt", dir);
  CHECK_OK(io_write_file_atomic(path, "precious", 8));
  const char *targets[2] = {path, fresh};
  for (int k = 0; k < 2; k++) {
    char *tmp = NULL;
    int fd = -1;
    CHECK_OK(io_publish_begin(targets[k], &tmp, &fd));
    if (!tmp) continue;
    CHECK(write(fd, "garbage", 7) == 7, "write to temporary file failed");
    close(fd);
    io_publish_abort(tmp);
    CHECK(!file_exists(tmp), "abort left '%s'", tmp);
    free(tmp);
  }
  check_contents(path, "precious");
  CHECK(!file_exists(fresh), "aborted publication created '%s'", fresh);
  io_publish_abort(NULL);
  printf("abort: destination intact, nothing created: ok\n");
}

/* A child starts publishing over an existing file and over a fresh name, writes, and dies. */
static void test_killed_child(const char *dir) {
  char path[512], fresh[512];
  snprintf(path, sizeof path, "%s/survivor.txt", dir);
  snprintf(fresh, sizeof fresh, "%s/orphan.txt", dir);
  CHECK_OK(io_write_file_atomic(path, "old contents", 12));
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    const char *targets[2] = {path, fresh};
    for (int k = 0; k < 2; k++) {
      char *tmp = NULL;
      int fd = -1;
      if (io_publish_begin(targets[k], &tmp, &fd) != SCL_OK) _exit(3);
      if (write(fd, "half-written new contents", 25) != 25) _exit(4);
    }
    _exit(0); /* dies without commit, descriptors open */
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait failed");
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed (status %d)", status);
  check_contents(path, "old contents");
  CHECK(!file_exists(fresh), "a killed publication created '%s'", fresh);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)pid);
  CHECK(file_exists(tmp), "expected the dead child's temporary file '%s'", tmp);
  printf("killed before commit: destination intact, no new file: ok\n");
}

static void test_errors(const char *dir) {
  char path[512], tmp[600];
  snprintf(path, sizeof path, "%s/no_such_dir/x.txt", dir);
  scl_error_clear();
  scl_err err = io_write_file_atomic(path, "x", 1);
  expect_error("publish into missing directory", err, SCL_ERR_IO,
               (const char *[]){"no_such_dir/x.txt", NULL});
  snprintf(path, sizeof path, "%s/y.txt", dir);
  snprintf(tmp, sizeof tmp, "%s/y.txt.tmp.missing", dir);
  err = io_publish_commit(tmp, path);
  expect_error("commit of a missing temporary file", err, SCL_ERR_IO,
               (const char *[]){"y.txt.tmp.missing", NULL});
  CHECK(!file_exists(path), "failed commit created '%s'", path);
}

static void test_planted_symlink(const char *dir) {
  char path[512], tmp[600], victim[512];
  snprintf(path, sizeof path, "%s/pub.txt", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  snprintf(victim, sizeof victim, "%s/victim.txt", dir);
  CHECK_OK(io_write_file_atomic(victim, "victim bytes", 12));
  CHECK(symlink("victim.txt", tmp) == 0, "cannot plant symlink '%s': %s", tmp, strerror(errno));
  CHECK_OK(io_write_file_atomic(path, "published", 9));
  check_contents(victim, "victim bytes");
  check_contents(path, "published");
  struct stat st;
  CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode), "'%s' is not a regular file", path);
  CHECK(lstat(tmp, &st) != 0, "temporary name '%s' left behind", tmp);
  unlink(path);
  unlink(victim);
  printf("planted symlink under the temporary name: replaced, target intact: ok\n");
}

static void test_mkdirs(const char *dir) {
  char a[512], abc[600], file[600];
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(abc, sizeof abc, "%s/a/b/c/", dir);
  CHECK_OK(io_mkdirs(abc));
  CHECK(file_exists(abc), "io_mkdirs did not create '%s'", abc);
  CHECK_OK(io_mkdirs(abc));
  snprintf(file, sizeof file, "%s/a/f", dir);
  CHECK_OK(io_write_file_atomic(file, "x", 1));
  snprintf(abc, sizeof abc, "%s/a/f/g", dir);
  scl_error_clear();
  expect_error("a file in the way", io_mkdirs(abc), SCL_ERR_IO, (const char *[]){"a/f", NULL});
  unlink(file);
  snprintf(abc, sizeof abc, "%s/a/b/c", dir);
  rmdir(abc);
  snprintf(abc, sizeof abc, "%s/a/b", dir);
  rmdir(abc);
  rmdir(a);
}

int main(void) {
  const char *dir = scratch_dir("publish_");
  test_write_atomic(dir);
  test_abort(dir);
  test_killed_child(dir);
  test_errors(dir);
  test_planted_symlink(dir);
  test_mkdirs(dir);
  if (failures == 0) scratch_remove(dir);
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
