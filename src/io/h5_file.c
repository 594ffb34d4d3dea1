/* h5_file.c: HDF5 files (create via a temporary name and publish, open, close), groups, link
 * lookup, and the translation of HDF5's error stack into one safecl error message.
 *
 * HDF5 reports a failure as a stack of records from the API function down to the routine that
 * first noticed it; the innermost record usually says what is actually wrong ("file signature
 * not found", "No such file or directory"), the outer ones only that something failed. We keep
 * the innermost one and name the file and object ourselves, instead of letting HDF5 print its
 * whole stack to stderr. Files are opened with file locking that is skipped where the
 * filesystem does not support it (Lustre and NFS mounts often do not), since a failed lock would
 * otherwise make every open fail. The parallel create (MPI-IO, collective) lives in h5_group.c and
 * fills in the same struct h5_file; commit, abort and group creation here hand group files to it
 * and leave the serial path as it was. A serial file being created holds room on its disk (a
 * sibling `.reserve` file, h5_internal.h) that it gives back right before the flush at commit,
 * because HDF5 1.10 cannot close a file whose flush failed without leaving a dangling id.
 * Published files carry a whole-file checksum in their user block, written after the close and
 * checked at open before H5Fopen (h5_whole.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5_internal.h"
#include "safecl/publish.h"

void h5_quiet(void) {
  static int done;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
  }
}

/* The innermost record: the first one of an upward walk. */
typedef struct h5_err_info {
  char desc[512];
  char minor[128];
  char func[96];
  int found;
} h5_err_info;

static herr_t h5_err_walk(unsigned n, const H5E_error2_t *e, void *data) {
  h5_err_info *info = data;
  if (n != 0 || info->found) return 0;
  info->found = 1;
  snprintf(info->desc, sizeof info->desc, "%s", e->desc ? e->desc : "");
  snprintf(info->func, sizeof info->func, "%s", e->func_name ? e->func_name : "?");
  if (H5Eget_msg(e->min_num, NULL, info->minor, sizeof info->minor) < 0) info->minor[0] = '\0';
  return 0;
}

const char *h5_obj_name(const char *obj) { return obj && obj[0] ? obj : "/"; }

scl_err h5_fail_at(const h5_file *f, const char *obj, const char *call, const char *file, int line,
                   const char *func) {
  h5_err_info info;
  memset(&info, 0, sizeof info);
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_err_walk, &info);
  H5Eclear2(H5E_DEFAULT);
  const char *path = f ? f->path : "?";
  char where[1024];
  if (obj)
    snprintf(where, sizeof where, "HDF5 file '%s', object '%s'", path, h5_obj_name(obj));
  else
    snprintf(where, sizeof where, "HDF5 file '%s'", path);
  if (!info.found)
    return scl_error_raise(SCL_ERR_HDF5, file, line, func, "%s: %s failed", where, call);
  /* HDF5's file drivers put the system's errno into the message ("errno = 28"): a full disk or
   * an I/O error is the machine's fault (SCL_ERR_RESOURCE), not the file's. */
  const char *e = strstr(info.desc, "errno = ");
  scl_err code =
      e && scl_errno_code(atoi(e + 8)) == SCL_ERR_RESOURCE ? SCL_ERR_RESOURCE : SCL_ERR_HDF5;
  return scl_error_raise(code, file, line, func, "%s: %s failed: %s%s%s%s (in %s)", where, call,
                         info.desc, info.minor[0] ? " [" : "", info.minor, info.minor[0] ? "]" : "",
                         info.func);
}

scl_err h5_require_writable(const h5_file *f, const char *obj) {
  SCL_CHECK(f, SCL_ERR_ARG, "h5: NULL file writing '%s'", h5_obj_name(obj));
  SCL_CHECK(f->writable, SCL_ERR_ARG, "HDF5 file '%s' is open read-only; cannot write '%s'",
            f->path, h5_obj_name(obj));
  return SCL_OK;
}

hid_t h5_vlen_utf8_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return t;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

hid_t h5_fixed_utf8_type(size_t len) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0) return t;
  if (H5Tset_size(t, len ? len : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
      H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
    H5Tclose(t);
    return -1;
  }
  return t;
}

scl_err h5_file_fixed_strings(h5_file *f) {
  SCL_CALL(h5_require_writable(f, NULL));
  f->fixed_strings = 1;
  return SCL_OK;
}

/* 1 if prefix `name` names a group, 0 if it names something else, <0 on failure. */
static int h5_is_group(hid_t loc, const char *name) {
  hid_t o = H5Oopen(loc, name, H5P_DEFAULT);
  if (o < 0) return -1;
  int group = H5Iget_type(o) == H5I_GROUP;
  H5Oclose(o);
  return group;
}

/* Checks each prefix of `path` in turn: H5Lexists on "a/b" fails outright when "a" is missing
 * or is a dataset, so every intermediate prefix must exist and be a group. */
int h5_link_exists(hid_t loc, const char *path) {
  size_t len = strlen(path);
  char *buf = malloc(len + 1);
  if (!buf) return -1;
  memcpy(buf, path, len + 1);
  int result = 1;
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char saved = buf[i];
    buf[i] = '\0';
    htri_t e = H5Lexists(loc, buf, H5P_DEFAULT);
    buf[i] = saved;
    if (e > 0 && saved == '/') {
      buf[i] = '\0';
      e = h5_is_group(loc, buf);
      buf[i] = saved;
    }
    if (e <= 0) {
      result = (int)e;
      break;
    }
    if (saved == '/' && buf[i + 1] == '\0') break; /* trailing slash */
  }
  free(buf);
  return result;
}

scl_err h5_file_alloc(const char *path, h5_file **out) {
  *out = NULL;
  SCL_CHECK(path && path[0], SCL_ERR_ARG, "h5: empty file path");
  h5_quiet();
  h5_file *f = calloc(1, sizeof *f);
  SCL_CHECK(f, SCL_ERR_NOMEM, "HDF5 file handle for '%s'", path);
  f->id = -1;
  f->comm = NULL;
  f->path = strdup(path);
  if (!f->path) {
    free(f);
    return SCL_ERROR(SCL_ERR_NOMEM, "HDF5 file path '%s'", path);
  }
  *out = f;
  return SCL_OK;
}

void h5_file_free(h5_file *f) {
  for (int i = 0; i < f->n_blobs; i++) free(f->blobs[i]);
  free(f->blobs);
  free(f->reserve_path);
  free(f->prev_path);
  free(f->tmp_path);
  free(f->path);
  free(f);
}

/* File access: close every object with the file, lock where the filesystem allows. */
hid_t h5_fapl(void) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return fapl;
  if (H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
    H5Pclose(fapl);
    return -1;
  }
#if H5_VERSION_GE(1, 10, 7)
  if (H5Pset_file_locking(fapl, 1, 1) < 0) {
    H5Pclose(fapl);
    return -1;
  }
#endif
  return fapl;
}

/* Takes H5_CLOSE_RESERVE bytes of the disk in `tmp_path`.reserve (see h5_internal.h). A disk
 * without that room is full: the file is refused now rather than at a close that cannot end. */
static scl_err reserve_take(h5_file *f) {
  size_t n = strlen(f->tmp_path) + 16;
  SCL_CHECK(f->reserve_path = malloc(n), SCL_ERR_NOMEM, "reserve name for '%s'", f->path);
  snprintf(f->reserve_path, n, "%s.reserve", f->tmp_path);
  if (unlink(f->reserve_path) != 0) errno = 0;
  int fd = open(f->reserve_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) { /* the directory is missing or closed to us: H5Fcreate says so, naming the file */
    free(f->reserve_path);
    f->reserve_path = NULL;
    errno = 0;
    return SCL_OK;
  }
  int rc = posix_fallocate(fd, 0, H5_CLOSE_RESERVE);
  close(fd);
  if (rc == EOPNOTSUPP || rc == EINVAL) rc = 0; /* no way to hold room here: go without */
  if (rc == 0) return SCL_OK;
  unlink(f->reserve_path);
  free(f->reserve_path);
  f->reserve_path = NULL;
  errno = 0;
  return SCL_ERROR(scl_errno_code(rc),
                   "HDF5 file '%s': cannot hold %d KiB of the disk for its close: %s", f->path,
                   H5_CLOSE_RESERVE / 1024, strerror(rc));
}

/* Gives the reserve back (before a close that must find room, and when the file is done). */
static void reserve_release(h5_file *f) {
  if (f->reserve_path && unlink(f->reserve_path) != 0) errno = 0;
  free(f->reserve_path);
  f->reserve_path = NULL;
}

/* Grows the reserve to what a flush of f can write at most: the metadata HDF5 caches and its
 * sieve buffer (H5_SIEVE_BYTES, HDF5's default size). */
static scl_err reserve_for_flush(h5_file *f) {
  size_t max = 0, min = 0, cur = 0;
  int n = 0;
  if (!f->reserve_path) return SCL_OK;
  if (H5Fget_mdc_size(f->id, &max, &min, &cur, &n) < 0) return H5_FAIL(f, NULL, "H5Fget_mdc_size");
  off_t need = (off_t)cur + H5_SIEVE_BYTES;
  if (need <= H5_CLOSE_RESERVE) return SCL_OK;
  int fd = open(f->reserve_path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  int rc = fd < 0 ? errno : posix_fallocate(fd, 0, need);
  if (fd >= 0) close(fd);
  errno = 0;
  if (rc == 0 || rc == EOPNOTSUPP || rc == EINVAL) return SCL_OK;
  return SCL_ERROR(scl_errno_code(rc),
                   "HDF5 file '%s': no room on the disk to write out its last %lld KiB: %s",
                   f->path, (long long)(need / 1024), strerror(rc));
}

scl_err h5_file_create_atomic(const char *path, h5_file **out) {
  h5_file *f = NULL;
  SCL_CALL(h5_file_alloc(path, &f));
  scl_err err = io_publish_begin(path, &f->tmp_path, NULL);
  if (!err) {
    err = reserve_take(f);
    if (err) io_publish_abort(f->tmp_path);
  }
  if (err) {
    h5_file_free(f);
    return SCL_TRACE(err);
  }
  hid_t fapl = h5_fapl(), fcpl = h5_whole_fcpl();
  if (fapl < 0 || fcpl < 0) {
    err = H5_FAIL(f, NULL, "H5Pcreate(file access/creation)");
  } else {
    f->id = H5Fcreate(f->tmp_path, H5F_ACC_TRUNC, fcpl, fapl);
    if (f->id < 0) err = H5_FAIL(f, NULL, "H5Fcreate (temporary file)");
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (fcpl >= 0) H5Pclose(fcpl);
  if (err) {
    reserve_release(f);
    io_publish_abort(f->tmp_path);
    h5_file_free(f);
    return err;
  }
  f->writable = 1;
  *out = f;
  return SCL_OK;
}

scl_err h5_file_open_read(const char *path, h5_file **out) {
  /* HDF5 opens without O_NONBLOCK, so a FIFO would block it: refuse what is not a regular file
   * (a missing file is left to HDF5's own message). */
  struct stat st;
  SCL_CHECK(stat(path, &st) != 0 || S_ISREG(st.st_mode), SCL_ERR_IO,
            "HDF5 file %s is %s, not a regular file", path, scl_file_kind(st.st_mode));
  /* The whole-file checksum first: HDF5 1.10 can crash on a damaged file (h5_whole.c). */
  int sealed = 0;
  SCL_CALL(h5_whole_check(path, &sealed));
  h5_file *f = NULL;
  SCL_CALL(h5_file_alloc(path, &f));
  f->sealed = sealed;
  scl_err err = SCL_OK;
  hid_t fapl = h5_fapl();
  if (fapl < 0) {
    err = H5_FAIL(f, NULL, "H5Pcreate(file access)");
  } else {
    f->id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f->id < 0) err = H5_FAIL(f, NULL, "H5Fopen (read-only)");
    H5Pclose(fapl);
  }
  if (!err) err = h5_attrs_verify(f);
  if (err) {
    if (f->id >= 0 && H5Fclose(f->id) < 0) H5Eclear2(H5E_DEFAULT);
    h5_file_free(f);
    return err;
  }
  *out = f;
  return SCL_OK;
}

scl_err h5_file_commit(h5_file **pf) {
  if (!pf || !*pf) return SCL_ERROR(SCL_ERR_ARG, "h5_file_commit: NULL file");
  if (h5_file_is_group(*pf)) {
    SCL_CALL(h5_group_finish(pf, SCL_OK, 1));
    return SCL_OK;
  }
  h5_file *f = *pf;
  *pf = NULL;
  scl_err err = SCL_OK;
  if (f->tmp_path) err = h5_blobs_seal(f);
  if (!err && f->tmp_path) err = h5_attrs_seal(f);
  /* What HDF5 still buffers reaches the disk here, where a full disk shows, and HDF5 1.10 cannot
   * come back from a failed flush: the close fails too and leaves the id registered over a
   * half-destroyed file, which HDF5's cleanup at MPI_Finalize dereferences (SIGSEGV). So the
   * reserve grows to what the flush can write, and is given back right before it; a disk without
   * that room refuses the file while it can still be discarded (emptied, then closed). */
  if (!err && f->tmp_path) err = reserve_for_flush(f);
  reserve_release(f);
  if (err && f->tmp_path && truncate(f->tmp_path, 0) != 0) errno = 0;
  if (!err && f->tmp_path && H5Fflush(f->id, H5F_SCOPE_LOCAL) < 0)
    err = H5_FAIL(f, NULL, "H5Fflush");
  if (H5Fclose(f->id) < 0 && !err) err = H5_FAIL(f, NULL, "H5Fclose");
  if (f->tmp_path) {
    if (!err) err = h5_whole_seal(f->tmp_path, f->path);
    if (!err) err = h5_keep_previous_now(f);
    if (err)
      io_publish_abort(f->tmp_path);
    else
      err = io_publish_commit(f->tmp_path, f->path);
  }
  h5_file_free(f);
  SCL_CALL(err);
  return SCL_OK;
}

void h5_file_abort(h5_file **pf) {
  if (!pf || !*pf) return;
  if (h5_file_is_group(*pf)) {
    /* Collective; discarding was this rank's own decision, so the verdict is not reported. */
    (void)h5_group_finish(pf, SCL_ERR_IO, 0);
    return;
  }
  h5_file *f = *pf;
  *pf = NULL;
  /* The contents are discarded: emptying the temporary first frees its space, so that the close
   * (which flushes) succeeds on a full disk. A failed H5Fclose leaves the id registered over a
   * half-destroyed file, which HDF5's own cleanup at MPI_Finalize then dereferences. */
  reserve_release(f);
  if (f->tmp_path && truncate(f->tmp_path, 0) != 0) errno = 0;
  if (f->id >= 0 && H5Fclose(f->id) < 0) H5Eclear2(H5E_DEFAULT);
  io_publish_abort(f->tmp_path);
  h5_file_free(f);
}

scl_err h5_file_close(h5_file **pf) {
  if (!pf || !*pf) return SCL_OK;
  if ((*pf)->tmp_path) {
    scl_err err = SCL_ERROR(SCL_ERR_ARG,
                            "HDF5 file '%s' is being created: h5_file_close would lose it; call "
                            "h5_file_commit or h5_file_abort (discarded)",
                            (*pf)->path);
    h5_file_abort(pf);
    return err;
  }
  SCL_CALL(h5_file_commit(pf));
  return SCL_OK;
}

const char *h5_file_path(const h5_file *f) { return f->path; }

scl_err h5_file_keep_previous(h5_file *f, const char *prev_path) {
  SCL_CALL(h5_require_writable(f, NULL));
  SCL_CHECK(f->tmp_path, SCL_ERR_ARG, "HDF5 file '%s' is not being created", f->path);
  free(f->prev_path);
  f->prev_path = prev_path ? strdup(prev_path) : NULL;
  SCL_CHECK(!prev_path || f->prev_path, SCL_ERR_NOMEM, "previous file name '%s'", prev_path);
  return SCL_OK;
}

/* Right before the publishing rename: the file being replaced moves to prev_path, so that a
 * previous good copy survives (the rename that publishes syncs the directory for both). A
 * missing file (the first publication) is fine. */
scl_err h5_keep_previous_now(const h5_file *f) {
  if (!f->prev_path) return SCL_OK;
  if (rename(f->path, f->prev_path) != 0 && errno != ENOENT)
    return SCL_ERROR(SCL_ERR_IO, "cannot keep '%s' as '%s': %s", f->path, f->prev_path,
                     strerror(errno));
  errno = 0;
  return SCL_OK;
}

static scl_err h5_group_create_local(h5_file *f, const char *name) {
  SCL_CALL(h5_require_writable(f, name));
  int e = h5_link_exists(f->id, name);
  if (e < 0) return H5_FAIL(f, name, "H5Lexists");
  if (e > 0) return SCL_OK;
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (lcpl < 0) return H5_FAIL(f, name, "H5Pcreate(link create)");
  scl_err err = SCL_OK;
  hid_t g = -1;
  if (H5Pset_create_intermediate_group(lcpl, 1) < 0)
    err = H5_FAIL(f, name, "H5Pset_create_intermediate_group");
  else if ((g = H5Gcreate2(f->id, name, lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0)
    err = H5_FAIL(f, name, "H5Gcreate2");
  if (g >= 0) H5Gclose(g);
  H5Pclose(lcpl);
  return err;
}

scl_err h5_group_create(h5_file *f, const char *name) {
  return h5_group_agree(f, h5_group_create_local(f, name));
}

scl_err h5_exists(h5_file *f, const char *name, int *exists) {
  *exists = 0;
  if (!name || !name[0] || strcmp(name, "/") == 0) {
    *exists = 1;
    return SCL_OK;
  }
  int e = h5_link_exists(f->id, name);
  if (e < 0) return H5_FAIL(f, name, "H5Lexists");
  *exists = e;
  return SCL_OK;
}

scl_err h5_list_links(h5_file *f, const char *group, int64_t max, char ***names, int64_t *n) {
  *names = NULL;
  *n = 0;
  const char *g = h5_obj_name(group);
  H5G_info_t info;
  if (H5Gget_info_by_name(f->id, g, &info, H5P_DEFAULT) < 0)
    return H5_FAIL(f, g, "H5Gget_info_by_name");
  SCL_CHECK(info.nlinks <= (hsize_t)max, SCL_ERR_FORMAT,
            "HDF5 file '%s', group '%s': %llu links, more than the %lld expected", f->path, g,
            (unsigned long long)info.nlinks, (long long)max);
  char **out = calloc(info.nlinks ? info.nlinks : 1, sizeof *out);
  SCL_CHECK(out, SCL_ERR_NOMEM, "HDF5 file '%s': names of '%s'", f->path, g);
  scl_err err = SCL_OK;
  for (hsize_t i = 0; !err && i < info.nlinks; i++) {
    ssize_t len = H5Lget_name_by_idx(f->id, g, H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
    if (len < 0) {
      err = H5_FAIL(f, g, "H5Lget_name_by_idx");
    } else if (!(out[i] = malloc((size_t)len + 1))) {
      err = SCL_ERROR(SCL_ERR_NOMEM, "HDF5 file '%s': a name in '%s'", f->path, g);
    } else if (H5Lget_name_by_idx(f->id, g, H5_INDEX_NAME, H5_ITER_INC, i, out[i], (size_t)len + 1,
                                  H5P_DEFAULT) != len) {
      err = H5_FAIL(f, g, "H5Lget_name_by_idx");
    }
  }
  if (err) {
    h5_strings_free(out, (int64_t)info.nlinks);
    return err;
  }
  *names = out;
  *n = (int64_t)info.nlinks;
  return SCL_OK;
}
