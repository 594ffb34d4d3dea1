/* publish.h: atomic publication of files (write-then-rename), and `mkdir -p` for the
 * directories they go into.
 *
 * A file is written under a temporary name beside its destination, `<path>.tmp.<pid>`, then
 * published with io_publish_commit: fsync the temporary file, rename it over `path`, fsync the
 * directory. Until the rename, whatever was already at `path` is untouched, so a process that
 * dies before commit (a kill, a crash, a preempted job) loses nothing that was published; it
 * only leaves its temporary file behind. After commit returns, the new contents survive a power
 * loss as far as the filesystem honours fsync.
 *
 * The temporary name is unique to the process, not to the call: one process must not publish
 * the same path twice at the same time. None of these functions is collective; on a shared
 * filesystem exactly one rank should publish a given path. */
#ifndef SAFECL_PUBLISH_H
#define SAFECL_PUBLISH_H

#include <stddef.h>

#include "safecl/core.h"

/* Reserves the temporary name for `path` and, when `fd` is not NULL, creates that file
 * (truncating a stale one) opened for writing; *fd is then owned by the caller, who closes it
 * before commit or abort. With fd == NULL only the name is made and a stale file of that name is
 * removed; this is for libraries (HDF5) that create the file themselves.
 * *tmp_path is allocated here and owned by the caller: release it with free(). On failure
 * *tmp_path is NULL, *fd is -1 and no file is left behind. */
SCL_NODISCARD scl_err io_publish_begin(const char *path, char **tmp_path, int *fd);

/* Publishes `tmp_path` as `path`: fsync the file, rename, fsync the directory of `path`.
 * The caller has closed every descriptor it wrote through. On failure the temporary file is
 * removed (the destination keeps its old contents) and the error names both paths.
 * Does not free tmp_path. */
SCL_NODISCARD scl_err io_publish_commit(const char *tmp_path, const char *path);

/* Removes the temporary file; a missing file is not an error. Accepts NULL. Never fails in a
 * way the caller could act on, so it returns nothing; problems are logged as warnings. */
void io_publish_abort(const char *tmp_path);

/* Writes `len` bytes to `path` atomically (begin, write, commit). */
SCL_NODISCARD scl_err io_write_file_atomic(const char *path, const void *data, size_t len);

/* Writes all `len` bytes to `fd` (retrying short writes and EINTR); `what` names the file in the
 * error message. A helper for writers that stream into the descriptor from io_publish_begin. */
SCL_NODISCARD scl_err io_write_all(int fd, const void *data, size_t len, const char *what);

/* Creates `path` and any missing parent directories (mode 0777 less the umask), as `mkdir -p`:
 * directories that already exist are not an error. */
SCL_NODISCARD scl_err io_mkdirs(const char *path);

#endif /* SAFECL_PUBLISH_H */
