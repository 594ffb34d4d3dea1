/* file.c: opening a file that safecl reads whole from user input, regular files only.
 *
 * Weights, configs, dataset files and images are named by a user, so a path may be a FIFO (open
 * blocks until a writer appears), a device (/dev/zero reads forever), a directory or a socket.
 * Every such reader opens through scl_open_regular, which stats the path first (so a device is
 * never opened at all: opening some has side effects), then opens with O_NONBLOCK (so a path
 * swapped for a FIFO between the stat and the open still cannot block) and checks the opened
 * descriptor once more. The message names what the caller says the file is (a key such as
 * backbone.weights, or "list file"), the path and the kind of file found
 * (docs/architecture.md 7). Symlinks are followed: a link to a regular file is a regular file.
 * What this does not do: bound the size of a regular file; each reader bounds what it reads. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safecl/core.h"

const char *scl_file_kind(unsigned mode) {
  switch ((mode_t)mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFIFO:
      return "a FIFO";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFSOCK:
      return "a socket";
    case S_IFLNK:
      return "a symbolic link";
    default:
      return "not a regular file";
  }
}

scl_err scl_open_regular(const char *path, const char *what, int *fd) {
  *fd = -1;
  struct stat st;
  SCL_CHECK(stat(path, &st) == 0, SCL_ERR_IO, "cannot open %s %s: %s", what, path, strerror(errno));
  SCL_CHECK(S_ISREG(st.st_mode), SCL_ERR_IO, "%s %s is %s, not a regular file", what, path,
            scl_file_kind(st.st_mode));
  int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  SCL_CHECK(f >= 0, SCL_ERR_IO, "cannot open %s %s: %s", what, path, strerror(errno));
  if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) { /* replaced between stat and open */
    scl_err err = SCL_ERROR(SCL_ERR_IO,
                            "%s %s changed while being opened and is no longer a "
                            "regular file",
                            what, path);
    close(f);
    return err;
  }
  /* O_NONBLOCK only guarded the open; reads of a regular file ignore it, but the descriptor
   * goes to code that expects a plain one. */
  int flags = fcntl(f, F_GETFL);
  if (flags >= 0) (void)fcntl(f, F_SETFL, flags & ~O_NONBLOCK);
  *fd = f;
  return SCL_OK;
}

scl_err scl_fopen_regular(const char *path, const char *what, FILE **out) {
  *out = NULL;
  int fd = -1;
  SCL_CALL(scl_open_regular(path, what, &fd));
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return SCL_ERROR(SCL_ERR_NOMEM, "cannot open a stream on %s %s: %s", what, path,
                     strerror(errno));
  }
  *out = f;
  return SCL_OK;
}
