/* publish.c: write-then-rename publication of files, and the directories they go into.
 *
 * The temporary file lives in the destination's directory so that rename(2) is atomic (same
 * filesystem) and its name carries the pid so that two processes publishing the same path do not
 * write into each other's temporary file. We fsync the file before the rename and the directory
 * after it: without the first a crash could publish an empty or partial file under the final
 * name; without the second the rename itself could be lost. What this deliberately does not do is
 * clean up temporary files left by processes that died: on a shared filesystem the pid in the
 * name may belong to a live process on another node, so only the owner may remove it. Whatever
 * sits under our own temporary name (a stale file of ours, or a symlink planted there) is removed
 * and the file created afresh with O_EXCL | O_NOFOLLOW, so no write ever lands in a link's target. */
#include "safecl/publish.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Directory part of `path` ("." when there is none); *out is freed with free(). */
static scl_err dir_of(const char *path, char **out) {
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 1;
  if (slash && n == 0) n = 1; /* "/file": the root directory */
  char *dir = malloc(n + 1);
  SCL_CHECK(dir, SCL_ERR_NOMEM, "directory name of '%s'", path);
  if (slash)
    memcpy(dir, path, n);
  else
    dir[0] = '.';
  dir[n] = '\0';
  *out = dir;
  return SCL_OK;
}

static scl_err fsync_path(const char *path, int directory, const char *what) {
  int flags = O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0);
  int fd = open(path, flags);
  SCL_CHECK(fd >= 0, SCL_ERR_IO, "cannot open %s '%s' to sync it: %s", what, path, strerror(errno));
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  /* Some filesystems cannot sync a directory and say so with EINVAL; nothing more can be done. */
  if (rc != 0 && !(directory && saved == EINVAL))
    return SCL_ERROR(scl_errno_code(saved), "cannot fsync %s '%s': %s", what, path,
                     strerror(saved));
  return SCL_OK;
}

scl_err io_publish_begin(const char *path, char **tmp_path, int *fd) {
  *tmp_path = NULL;
  if (fd) *fd = -1;
  SCL_CHECK(path && path[0], SCL_ERR_ARG, "io_publish_begin: empty path");
  size_t len = strlen(path) + 32;
  char *tmp = malloc(len);
  SCL_CHECK(tmp, SCL_ERR_NOMEM, "temporary file name for '%s'", path);
  snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
  if (unlink(tmp) != 0 && errno != ENOENT) {
    scl_err err =
        SCL_ERROR(SCL_ERR_IO, "cannot remove stale temporary file '%s': %s", tmp, strerror(errno));
    free(tmp);
    return err;
  }
  if (fd) {
    *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (*fd < 0) {
      scl_err err = SCL_ERROR(scl_errno_code(errno), "cannot create '%s' (to publish '%s'): %s",
                              tmp, path, strerror(errno));
      free(tmp);
      return err;
    }
  }
  *tmp_path = tmp;
  return SCL_OK;
}

scl_err io_publish_commit(const char *tmp_path, const char *path) {
  scl_err err = fsync_path(tmp_path, 0, "temporary file");
  if (err) {
    io_publish_abort(tmp_path);
    return SCL_TRACE(err);
  }
  if (rename(tmp_path, path) != 0) {
    err = SCL_ERROR(SCL_ERR_IO, "cannot rename '%s' to '%s': %s", tmp_path, path, strerror(errno));
    io_publish_abort(tmp_path);
    return err;
  }
  char *dir = NULL;
  SCL_CALL(dir_of(path, &dir));
  err = fsync_path(dir, 1, "directory");
  free(dir);
  SCL_CALL(err);
  return SCL_OK;
}

void io_publish_abort(const char *tmp_path) {
  if (!tmp_path) return;
  if (unlink(tmp_path) != 0 && errno != ENOENT)
    SCL_WARN("cannot remove temporary file '%s': %s", tmp_path, strerror(errno));
}

scl_err io_write_all(int fd, const void *data, size_t len, const char *what) {
  const char *p = data;
  while (len > 0) {
    size_t chunk = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
    ssize_t n = write(fd, p, chunk);
    if (n < 0 && errno == EINTR) continue;
    SCL_CHECK(n > 0, n < 0 ? scl_errno_code(errno) : SCL_ERR_IO, "cannot write '%s': %s", what,
              n < 0 ? strerror(errno) : "no progress");
    p += n;
    len -= (size_t)n;
  }
  return SCL_OK;
}

scl_err io_write_file_atomic(const char *path, const void *data, size_t len) {
  char *tmp = NULL;
  int fd = -1;
  SCL_CALL(io_publish_begin(path, &tmp, &fd));
  scl_err err = io_write_all(fd, data, len, tmp);
  if (close(fd) != 0 && !err)
    err = SCL_ERROR(scl_errno_code(errno), "cannot close '%s': %s", tmp, strerror(errno));
  if (err) {
    io_publish_abort(tmp);
    free(tmp);
    return SCL_TRACE(err);
  }
  err = io_publish_commit(tmp, path);
  free(tmp);
  SCL_CALL(err);
  return SCL_OK;
}

scl_err io_mkdirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf;; p++) {
    if (*p && (*p != '/' || p == buf)) continue;
    char c = *p;
    *p = '\0';
    if (buf[0] && mkdir(buf, 0777) != 0 && errno != EEXIST)
      return SCL_ERROR(scl_errno_code(errno), "%s: cannot create directory: %s", buf,
                       strerror(errno));
    if (!c) break;
    *p = c;
  }
  return SCL_OK;
}
