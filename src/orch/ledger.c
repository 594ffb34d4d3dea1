/* ledger.c: the sweep ledger's record format (CRC-checked text lines), appending with fsync, and
 * reading with torn-tail detection (format in include/safecl/ledger.h).
 *
 * Text rather than binary records: a user can `cat` or `grep` a ledger during a run, and a test
 * or a Python tool can write one with zlib.crc32. The price is a few dozen bytes per record and
 * strtod on replay, which stays far below a second for 100,000 records. A file is read whole into
 * memory; ledgers hold one line per trial event, so even a 10,000-trial sweep is a few MB.
 * Records are written one write() each, except a burst the caller gathers (orch_ledger_gather:
 * the PLAN records of a sweep's setup), written 1 MiB at a time. */
#include "safecl/ledger.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "safecl/publish.h"

static const char *const rec_names[ORCH_REC_COUNT] = {"NONE",
#define ORCH_REC_STR(name) #name,
                                                      ORCH_REC_LIST(ORCH_REC_STR)
#undef ORCH_REC_STR
};

const char *orch_rec_name(orch_rec_type t) {
  return t > 0 && t < ORCH_REC_COUNT ? rec_names[t] : "NONE";
}

uint32_t orch_crc32(const void *data, size_t len) {
  static uint32_t table[256];
  static int ready;
  if (!ready) { /* first call happens before any thread exists (coordinator setup) */
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = 1;
  }
  uint32_t crc = 0xFFFFFFFFu;
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

size_t orch_ledger_escape(const char *in, char *out, size_t cap) {
  size_t n = 0;
  for (const char *p = in; *p; p++) {
    const char *rep = *p == '\\' ? "\\\\" : *p == '\t' ? "\\t" : *p == '\n' ? "\\n" : NULL;
    size_t k = rep ? 2 : 1;
    if (n + k + 1 > cap) break;
    if (rep)
      memcpy(out + n, rep, 2);
    else
      out[n] = *p == '\r' ? ' ' : *p;
    n += k;
  }
  if (cap) out[n] = '\0';
  return n;
}

static void unescape(const char *in, size_t len, char *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 1 < cap; i++) {
    char c = in[i];
    if (c == '\\' && i + 1 < len) {
      char e = in[++i];
      c = e == 't' ? '\t' : e == 'n' ? '\n' : e;
    }
    out[n++] = c;
  }
  out[n] = '\0';
}

size_t orch_record_format(const orch_record *r, char *buf, size_t cap) {
  char text[3 * ORCH_LEDGER_TEXT_MAX];
  orch_ledger_escape(r->text, text, sizeof text);
  if (cap < 16) return 0;
  int n = snprintf(buf + 9, cap - 9, "%s %.17g %s %d %d %d %lld %.17g %.17g %.17g %.17g %s",
                   orch_rec_name(r->type), r->time, r->id[0] ? r->id : "-", (int)r->group,
                   (int)r->attempt, (int)r->sessions, (long long)r->count, r->seconds, r->final_acc,
                   r->avg_acc, r->val_acc, text);
  if (n < 0 || (size_t)n + 11 > cap) return 0;
  char crc[9];
  snprintf(crc, sizeof crc, "%08x", (unsigned)orch_crc32(buf + 9, (size_t)n));
  memcpy(buf, crc, 8);
  buf[8] = ' ';
  buf[9 + n] = '\n';
  buf[10 + n] = '\0';
  return (size_t)n + 10;
}

/* Next space-separated field of [*p, end); NULL at the end. */
static const char *field(const char **p, const char *end, size_t *len) {
  const char *s = *p;
  if (s >= end) return NULL;
  const char *sp = memchr(s, ' ', (size_t)(end - s));
  *len = sp ? (size_t)(sp - s) : (size_t)(end - s);
  *p = sp ? sp + 1 : end;
  return s;
}

static int parse_num(const char *s, size_t len, double *v) {
  char buf[64];
  if (len == 0 || len >= sizeof buf) return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  char *e = NULL;
  *v = strtod(buf, &e);
  return *e ? -1 : 0;
}

int orch_record_parse(const char *line, size_t len, orch_record *r) {
  if (len < 10 || line[8] != ' ') return -1;
  char hex[9];
  memcpy(hex, line, 8);
  hex[8] = '\0';
  char *e = NULL;
  unsigned long crc = strtoul(hex, &e, 16);
  if (*e || crc != orch_crc32(line + 9, len - 9)) return -1;
  memset(r, 0, sizeof *r);
  const char *p = line + 9, *end = line + len, *s;
  size_t n;
  if (!(s = field(&p, end, &n))) return -1;
  for (int t = 1; t < ORCH_REC_COUNT; t++)
    if (strlen(rec_names[t]) == n && !memcmp(rec_names[t], s, n)) r->type = (orch_rec_type)t;
  double v[10];
  for (int i = 0; i < 10; i++) {
    if (!(s = field(&p, end, &n))) return -1;
    if (i == 1) { /* 32 hex digits or "-": a NUL or other byte would not format back */
      if (n == 32) memcpy(r->id, s, 32);
      if (n != 32 && !(n == 1 && s[0] == '-')) return -1;
      for (size_t k = 0; n == 32 && k < n; k++)
        if (!isxdigit((unsigned char)s[k])) return -1;
      continue;
    }
    if (parse_num(s, n, &v[i])) return -1;
  }
  /* Integer fields out of their type's range (NaN included) cannot come from orch_record_format:
   * converting them would be undefined, so the record is refused before any cast. */
  for (int i = 2; i <= 4; i++)
    if (!(v[i] >= INT32_MIN && v[i] <= INT32_MAX)) return -3;
  if (!(v[5] >= -0x1p63 && v[5] < 0x1p63)) return -3;
  r->time = v[0];
  r->group = (int32_t)v[2];
  r->attempt = (int32_t)v[3];
  r->sessions = (int32_t)v[4];
  r->count = (int64_t)v[5];
  r->seconds = v[6];
  r->final_acc = v[7];
  r->avg_acc = v[8];
  r->val_acc = v[9];
  unescape(p, (size_t)(end - p), r->text, sizeof r->text);
  return r->type == ORCH_REC_NONE ? -2 : 0;
}

/* ---------------------------------------------------------------------------------------- */

static scl_err read_whole(const char *path, char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  int fd = -1;
  SCL_CALL(scl_open_regular(path, "ledger", &fd));
  struct stat st;
  scl_err err = SCL_OK;
  SCL_CHECK_GOTO(err, done, fstat(fd, &st) == 0, SCL_ERR_IO, "%s: cannot stat: %s", path,
                 strerror(errno));
  SCL_CALL_GOTO(err, scl_alloc((size_t)st.st_size + 1, "ledger contents", (void **)data), done);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t k = read(fd, *data + got, (size_t)st.st_size - got);
    if (k < 0 && errno == EINTR) continue;
    SCL_CHECK_GOTO(err, done, k >= 0, SCL_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    if (k == 0) break; /* shrank while reading: use what is there */
    got += (size_t)k;
  }
  (*data)[got] = '\0';
  *len = got;
done:
  close(fd);
  if (err) {
    scl_free(*data);
    *data = NULL;
  }
  return err;
}

scl_err orch_ledger_read_file(const char *path, orch_record_fn fn, void *ctx, int64_t *n_records,
                              int64_t *n_damaged, int64_t *tail) {
  char *data = NULL;
  size_t len = 0;
  SCL_CALL(read_whole(path, &data, &len));
  orch_record r;
  scl_err err = SCL_OK;
  int64_t good = 0, bad = 0, pending_bad = 0, line_no = 0;
  size_t valid_end = 0, pos = 0;
  while (!err && pos < len) {
    const char *nl = memchr(data + pos, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
    line_no++;
    int rc = nl ? orch_record_parse(data + pos, n, &r) : -1;
    if (rc == 0) {
      if (pending_bad)
        SCL_WARN("%s: %lld damaged record(s) before line %lld skipped", path,
                 (long long)pending_bad, (long long)line_no);
      bad += pending_bad;
      pending_bad = 0;
      good++;
      err = fn ? fn(ctx, &r, path) : SCL_OK;
    } else if (rc == -2) {
      SCL_DEBUG("%s:%lld: unknown record type skipped", path, (long long)line_no);
    } else if (rc == -3) {
      SCL_WARN("%s:%lld: damaged record skipped (an integer field is out of range)", path,
               (long long)line_no);
      bad++;
    } else {
      pending_bad++;
    }
    pos += n + (nl ? 1 : 0);
    if (rc != -1) valid_end = pos;
  }
  scl_free(data);
  if (err) return SCL_TRACE(err);
  if (n_records) *n_records = good;
  if (n_damaged) *n_damaged = bad;
  if (tail) *tail = (int64_t)valid_end;
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */

#define ORCH_LEDGER_GATHER_BYTES (1u << 20)

struct orch_ledger {
  int fd;
  char path[4096];
  char line[3 * ORCH_LEDGER_TEXT_MAX + 512];
  char *gathered; /* while gathering: the records gathered and unwritten (malloc) */
  size_t n_gathered;
};

scl_err orch_ledger_open(const char *run_dir, const char *job_id, orch_ledger **out) {
  *out = NULL;
  orch_ledger *l = calloc(1, sizeof *l);
  SCL_CHECK(l, SCL_ERR_NOMEM, "ledger");
  l->fd = -1;
  snprintf(l->path, sizeof l->path, "%s/ledger.%s.log", run_dir, job_id);
  scl_err err = SCL_OK;
  /* O_NOFOLLOW and the regular-file check: records and the torn-tail cut go into this file,
   * never into the target of a symlink planted under its name. */
  l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  SCL_CHECK_GOTO(err, fail, l->fd >= 0 || errno != ELOOP, SCL_ERR_IO,
                 "%s: is a symbolic link; refusing to write through it (remove it)", l->path);
  SCL_CHECK_GOTO(err, fail, l->fd >= 0, SCL_ERR_IO, "%s: cannot open for appending: %s", l->path,
                 strerror(errno));
  struct stat st;
  SCL_CHECK_GOTO(err, fail, fstat(l->fd, &st) == 0 && S_ISREG(st.st_mode), SCL_ERR_IO,
                 "%s: not a regular file; refusing to use it as the ledger", l->path);
  if (st.st_size > 0) {
    int64_t tail = 0;
    SCL_CALL_GOTO(err, orch_ledger_read_file(l->path, NULL, NULL, NULL, NULL, &tail), fail);
    if (fstat(l->fd, &st) == 0 && tail < (int64_t)st.st_size) {
      SCL_WARN("%s: torn tail of %lld bytes (a writer died mid-record) cut off", l->path,
               (long long)(st.st_size - tail));
      SCL_CHECK_GOTO(err, fail, ftruncate(l->fd, (off_t)tail) == 0, SCL_ERR_IO,
                     "%s: cannot truncate torn tail: %s", l->path, strerror(errno));
    }
  }
  SCL_CHECK_GOTO(err, fail, fsync(l->fd) == 0, SCL_ERR_IO, "%s: fsync failed: %s", l->path,
                 strerror(errno));
  *out = l;
  return SCL_OK;
fail:
  if (l->fd >= 0) close(l->fd);
  free(l);
  return err;
}

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

scl_err orch_ledger_append(orch_ledger *l, const orch_record *r, int sync) {
  orch_record copy = *r;
  if (copy.time == 0) copy.time = unix_now();
  size_t n = orch_record_format(&copy, l->line, sizeof l->line);
  SCL_CHECK(n != 0, SCL_ERR_INTERNAL, "%s: record does not fit a line", l->path);
  if (l->gathered && l->n_gathered + n > ORCH_LEDGER_GATHER_BYTES) {
    SCL_CALL(io_write_all(l->fd, l->gathered, l->n_gathered, l->path));
    l->n_gathered = 0;
  }
  if (l->gathered && n <= ORCH_LEDGER_GATHER_BYTES) {
    memcpy(l->gathered + l->n_gathered, l->line, n);
    l->n_gathered += n;
  } else {
    SCL_CALL(io_write_all(l->fd, l->line, n, l->path));
  }
  if (sync) SCL_CALL(orch_ledger_sync(l));
  return SCL_OK;
}

void orch_ledger_gather(orch_ledger *l) {
  if (!l->gathered) l->gathered = malloc(ORCH_LEDGER_GATHER_BYTES);
  l->n_gathered = 0; /* out of memory: records are written one at a time, as without this */
}

scl_err orch_ledger_flush(orch_ledger *l) {
  char *buf = l->gathered;
  size_t n = l->n_gathered;
  l->gathered = NULL;
  l->n_gathered = 0;
  scl_err err = n ? io_write_all(l->fd, buf, n, l->path) : SCL_OK;
  free(buf);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err orch_ledger_sync(orch_ledger *l) {
  SCL_CALL(orch_ledger_flush(l));
  SCL_CHECK(fsync(l->fd) == 0, SCL_ERR_IO, "%s: fsync failed: %s", l->path, strerror(errno));
  return SCL_OK;
}

scl_err orch_ledger_close(orch_ledger **l) {
  if (!l || !*l) return SCL_OK;
  scl_err err = orch_ledger_sync(*l);
  close((*l)->fd);
  free((*l)->gathered);
  free(*l);
  *l = NULL;
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

const char *orch_ledger_path(const orch_ledger *l) { return l->path; }

/* ---------------------------------------------------------------------------------------- */

typedef struct ledger_file {
  char *path;
  double first;
} ledger_file;

static double first_record_time(const char *path) {
  /* Non-blocking and checked again: the name may have become a FIFO since the listing. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  FILE *f = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "r") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    return INFINITY;
  }
  char line[3 * ORCH_LEDGER_TEXT_MAX + 512];
  orch_record r;
  double t = INFINITY;
  if (fgets(line, sizeof line, f)) {
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n' && orch_record_parse(line, n - 1, &r) == 0) t = r.time;
  }
  fclose(f);
  return t;
}

static int by_time_then_name(const void *a, const void *b) {
  const ledger_file *x = a, *y = b;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  return strcmp(x->path, y->path);
}

static int is_ledger_name(const char *name) {
  size_t n = strlen(name);
  return n > 11 && !strncmp(name, "ledger.", 7) && !strcmp(name + n - 4, ".log");
}

scl_err orch_ledger_list(const char *run_dir, char ***paths, int *n) {
  *paths = NULL;
  *n = 0;
  DIR *d = opendir(run_dir);
  if (!d) {
    if (errno == ENOENT) return SCL_OK;
    return SCL_ERROR(SCL_ERR_IO, "%s: cannot list: %s", run_dir, strerror(errno));
  }
  ledger_file *files = NULL;
  int count = 0, cap = 0;
  scl_err err = SCL_OK;
  for (struct dirent *e; !err && (e = readdir(d));) {
    if (!is_ledger_name(e->d_name)) continue;
    /* A ledger is a regular file: anything else by that name, a FIFO above all, would block a
     * read or never end it, and safecl never wrote it, so it is skipped with a warning. */
    struct stat st;
    const int found = fstatat(dirfd(d), e->d_name, &st, 0) == 0;
    if (!found || !S_ISREG(st.st_mode)) {
      SCL_WARN("%s/%s is %s, not a regular file: skipped, not a ledger", run_dir, e->d_name,
               found ? scl_file_kind(st.st_mode) : "gone");
      continue;
    }
    if (count == cap) {
      cap = cap ? 2 * cap : 8;
      ledger_file *grown = realloc(files, (size_t)cap * sizeof *files);
      if (!grown) {
        err = SCL_ERROR(SCL_ERR_NOMEM, "listing ledgers of %s", run_dir);
        break;
      }
      files = grown;
    }
    size_t len = strlen(run_dir) + strlen(e->d_name) + 2;
    files[count].path = malloc(len);
    if (!files[count].path) {
      err = SCL_ERROR(SCL_ERR_NOMEM, "listing ledgers of %s", run_dir);
      break;
    }
    snprintf(files[count].path, len, "%s/%s", run_dir, e->d_name);
    files[count].first = first_record_time(files[count].path);
    count++;
  }
  closedir(d);
  if (!err && count) {
    qsort(files, (size_t)count, sizeof *files, by_time_then_name);
    *paths = malloc((size_t)count * sizeof **paths);
    if (!*paths) err = SCL_ERROR(SCL_ERR_NOMEM, "listing ledgers of %s", run_dir);
  }
  for (int i = 0; i < count; i++) {
    if (!err)
      (*paths)[i] = files[i].path;
    else
      free(files[i].path);
  }
  free(files);
  if (err) return err;
  *n = count;
  return SCL_OK;
}

void orch_ledger_paths_free(char **paths, int n) {
  for (int i = 0; i < n; i++) free(paths[i]);
  free(paths);
}
