/* packed_lists.c: list-file datasets (DomainNet) packed into one HDF5 file (`safecl pack` of a
 * root holding ROOT/<domain>_<split>.txt), and what the list reader needs to read one.
 *
 * Layout (schema 1, kind "packed-domainnet"):
 *   /images/blob, /images/offsets (n + 1 int64), /images/paths (n strings, sorted, unique): every
 *        image any list names, once, under its list path
 *   /lists/blob, /lists/offsets (L + 1 int64), /lists/names (L strings, "<domain>_<split>"): the
 *        list files' bytes as they are
 * The list reader (domainnet.c) parses the stored list bytes exactly as it parses the files, so
 * samples, order, labels, domains and the manifest (which hashes the lists' bytes) are the same
 * from the pack as from the folder, for any choice and order of dataset.domains; an image is
 * found by its path (binary search) instead of stat(). Both blobs are read through one mapping
 * of the file. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset_impl.h"
#include "safecl/h5.h"

#define LIST_PACK_SCHEMA_VERSION 1
#define LIST_PACK_KIND "packed-domainnet"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int data_list_root(const char *root) {
  struct stat st;
  char path[4200];
  snprintf(path, sizeof path, "%s/train", root);
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0; /* a class folder */
  DIR *d = opendir(root);
  if (!d) return 0;
  int found = 0;
  for (struct dirent *e; !found && (e = readdir(d)) != NULL;) {
    size_t n = strlen(e->d_name);
    found = n > 10 && !strcmp(e->d_name + n - 10, "_train.txt");
  }
  closedir(d);
  return found;
}

/* The "<domain>_<split>" names of root's list files, sorted. */
static scl_err list_names(const char *root, char ***names, int64_t *n) {
  DIR *d = opendir(root);
  SCL_CHECK(d, SCL_ERR_IO, "%s: cannot open: %s", root, strerror(errno));
  int64_t cap = 0;
  scl_err err = SCL_OK;
  *names = NULL;
  *n = 0;
  for (struct dirent *e; !err && (e = readdir(d)) != NULL;) {
    size_t len = strlen(e->d_name);
    int train = len > 10 && !strcmp(e->d_name + len - 10, "_train.txt");
    int test = len > 9 && !strcmp(e->d_name + len - 9, "_test.txt");
    if (!train && !test) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      char **grown = realloc(*names, (size_t)cap * sizeof *grown);
      if (!grown) err = SCL_ERROR(SCL_ERR_NOMEM, "%s: list names", root);
      if (grown) *names = grown;
    }
    if (!err && !((*names)[*n] = strndup(e->d_name, len - 4)))
      err = SCL_ERROR(SCL_ERR_NOMEM, "%s: list names", root);
    if (!err) (*n)++;
  }
  closedir(d);
  if (!err && *n == 0)
    err = SCL_ERROR(SCL_ERR_FORMAT, "%s: no <domain>_train.txt or <domain>_test.txt list files",
                    root);
  if (!err) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
  return err;
}

static scl_err slurp(const char *path, uint8_t **buf, size_t *len) {
  FILE *f = NULL;
  SCL_CALL(scl_fopen_regular(path, "file to pack", &f));
  struct stat st;
  scl_err err = SCL_OK;
  *len = 0;
  SCL_CHECK_GOTO(err, done, fstat(fileno(f), &st) == 0, SCL_ERR_IO, "%s: cannot stat", path);
  uint8_t *grown = realloc(*buf, (size_t)st.st_size + 1);
  SCL_CHECK_GOTO(err, done, grown, SCL_ERR_NOMEM, "%s: %lld bytes", path, (long long)st.st_size);
  *buf = grown;
  *len = (size_t)st.st_size;
  if (*len && fread(*buf, 1, *len, f) != *len)
    SCL_ERROR_GOTO(err, done, SCL_ERR_IO, "%s: short read", path);
done:
  fclose(f);
  return err;
}

/* Every path the lists name (each list opened as the reader opens it, so a malformed line or a
 * missing image fails here, naming list file and line), sorted and unique. */
static scl_err collect_paths(const char *root, char *const *names, int64_t n_lists, char ***out,
                             int64_t *n_out) {
  int64_t cap = 0, n = 0;
  char **paths = NULL;
  scl_err err = SCL_OK;
  for (int64_t l = 0; l < n_lists && !err; l++) {
    char domain[1024];
    const char *us = strrchr(names[l], '_');
    snprintf(domain, sizeof domain, "%.*s", (int)(us - names[l]), names[l]);
    data_source src = {.format = "domainnet", .root = root, .split = us + 1, .domains = domain};
    data_dataset *ds = NULL;
    err = data_dataset_open(&src, &ds);
    for (int64_t i = 0; !err && i < data_dataset_count(ds); i++) {
      if (n == cap) {
        cap = cap ? 2 * cap : 1024;
        char **grown = realloc(paths, (size_t)cap * sizeof *grown);
        if (!grown) err = SCL_ERROR(SCL_ERR_NOMEM, "pack: %lld paths", (long long)cap);
        if (grown) paths = grown;
      }
      if (!err && !(paths[n] = strdup(data_dataset_path(ds, i))))
        err = SCL_ERROR(SCL_ERR_NOMEM, "pack: paths");
      if (!err) n++;
    }
    data_dataset_close(&ds);
  }
  if (!err) qsort(paths, (size_t)n, sizeof *paths, cmp_str);
  int64_t k = 0;
  for (int64_t i = 0; i < n; i++) {
    if (k > 0 && !strcmp(paths[k - 1], paths[i]))
      free(paths[i]);
    else
      paths[k++] = paths[i];
  }
  *out = paths;
  *n_out = err ? n : k;
  return err;
}

static void free_strs(char **s, int64_t n) {
  for (int64_t i = 0; s && i < n; i++) free(s[i]);
  free(s);
}

/* Writes files root/<name><suffix> for every name into blob `group`/blob with offsets and names. */
static scl_err write_files(h5_file *f, const char *group, const char *root, char *const *names,
                           int64_t n, const char *suffix) {
  int64_t *off = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  char path[8400], name[64];
  scl_err err = SCL_OK;
  SCL_CALL(scl_alloc((size_t)(n + 1) * 8, "pack offsets", (void **)&off));
  off[0] = 0;
  for (int64_t i = 0; i < n && !err; i++) {
    struct stat st;
    snprintf(path, sizeof path, "%s/%s%s", root, names[i], suffix);
    if (stat(path, &st) != 0) err = SCL_ERROR(SCL_ERR_IO, "%s: cannot stat", path);
    if (!err) off[i + 1] = off[i] + (int64_t)st.st_size;
  }
  snprintf(name, sizeof name, "%s/blob", group);
  if (!err) err = h5_blob_create(f, name, off[n] > 0 ? off[n] : 1);
  for (int64_t i = 0; i < n && !err; i++) {
    snprintf(path, sizeof path, "%s/%s%s", root, names[i], suffix);
    err = slurp(path, &buf, &len);
    if (!err && (int64_t)len != off[i + 1] - off[i])
      err = SCL_ERROR(SCL_ERR_IO, "%s changed size while packing", path);
    if (!err) err = h5_blob_write(f, name, off[i], buf, (int64_t)len);
  }
  snprintf(name, sizeof name, "%s/offsets", group);
  if (!err) err = h5_write_i64_1d(f, name, off, n + 1);
  snprintf(name, sizeof name, "%s/%s", group, suffix[0] ? "names" : "paths");
  if (!err) err = h5_write_strings(f, name, (const char *const *)names, n);
  if (!err) SCL_INFO("pack: %s: %lld files, %.1f MB", group, (long long)n, (double)off[n] / 1e6);
  free(buf);
  scl_free(off);
  return err;
}

scl_err data_pack_lists(const char *root, const char *out) {
  char **names = NULL, **paths = NULL;
  int64_t n_lists = 0, n_paths = 0;
  h5_file *f = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, list_names(root, &names, &n_lists), done);
  SCL_CALL_GOTO(err, collect_paths(root, names, n_lists, &paths, &n_paths), done);
  SCL_CALL_GOTO(err, h5_file_create_atomic(out, &f), done);
  SCL_CALL_GOTO(err, h5_write_provenance(f, LIST_PACK_SCHEMA_VERSION), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "kind", LIST_PACK_KIND), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "source_root", root), done);
  SCL_CALL_GOTO(err, write_files(f, "images", root, paths, n_paths, ""), done);
  SCL_CALL_GOTO(err, write_files(f, "lists", root, names, n_lists, ".txt"), done);
  SCL_CALL_GOTO(err, h5_file_commit(&f), done);
done:
  h5_file_abort(&f);
  free_strs(names, n_lists);
  free_strs(paths, n_paths);
  return err;
}

void ds_list_pack_free(ds_list_pack *pk) {
  h5_strings_free(pk->paths, pk->n_paths);
  h5_strings_free(pk->lists, pk->n_lists);
  scl_free(pk->offsets);
  scl_free(pk->list_offsets);
  memset(pk, 0, sizeof *pk);
}

/* Reads `name` (n + 1 offsets of a blob of blob_len bytes), checking they stay inside it. */
static scl_err read_offsets(h5_file *f, const char *path, const char *name, int64_t n,
                            int64_t blob_len, int64_t **off) {
  SCL_CALL(scl_alloc((size_t)(n + 1) * 8, "pack offsets", (void **)off));
  SCL_CALL(h5_read_i64_1d(f, name, *off, n + 1));
  SCL_CHECK((*off)[0] == 0 && (*off)[n] <= blob_len, SCL_ERR_FORMAT, "%s: %s exceed their blob",
            path, name);
  for (int64_t i = 0; i < n; i++)
    SCL_CHECK((*off)[i + 1] >= (*off)[i], SCL_ERR_FORMAT, "%s: %s decrease at %lld", path, name,
              (long long)i);
  return SCL_OK;
}

static scl_err open_meta(h5_file *f, const char *path, ds_list_pack *pk, int64_t *img_off,
                         int64_t *img_len, int64_t *list_off, int64_t *list_len) {
  char *kind = NULL;
  SCL_CALL(h5_check_schema(f, LIST_PACK_SCHEMA_VERSION, "packed DomainNet dataset"));
  SCL_CALL(h5_attr_read_str(f, NULL, "kind", &kind));
  int ok = !strcmp(kind, LIST_PACK_KIND);
  scl_err err = ok ? SCL_OK
                   : SCL_ERROR(SCL_ERR_FORMAT,
                               "%s: kind is '%s', not '" LIST_PACK_KIND
                               "': dataset.format = \"domainnet\" reads a pack of list files",
                               path, kind);
  free(kind);
  if (err) return err;
  SCL_CALL(h5_read_strings(f, "images/paths", &pk->paths, &pk->n_paths));
  SCL_CALL(h5_read_strings(f, "lists/names", &pk->lists, &pk->n_lists));
  for (int64_t i = 1; i < pk->n_paths; i++)
    SCL_CHECK(strcmp(pk->paths[i - 1], pk->paths[i]) < 0, SCL_ERR_FORMAT,
              "%s: images/paths is not sorted at %lld", path, (long long)i);
  SCL_CALL(h5_blob_locate(f, "images/blob", img_off, img_len));
  SCL_CALL(h5_blob_locate(f, "lists/blob", list_off, list_len));
  SCL_CALL(read_offsets(f, path, "images/offsets", pk->n_paths, *img_len, &pk->offsets));
  SCL_CALL(read_offsets(f, path, "lists/offsets", pk->n_lists, *list_len, &pk->list_offsets));
  return SCL_OK;
}

scl_err ds_list_pack_open(data_dataset *ds, const char *path, ds_list_pack *pk) {
  h5_file *f = NULL;
  int64_t img_off = 0, img_len = 0, list_off = 0, list_len = 0;
  memset(pk, 0, sizeof *pk);
  SCL_CALL(h5_file_open_read(path, &f));
  scl_err err = open_meta(f, path, pk, &img_off, &img_len, &list_off, &list_len);
  scl_err close_err = h5_file_close(&f);
  if (!err) err = close_err;
  if (err) return SCL_TRACE(err);
  int fd = -1;
  SCL_CALL(scl_open_regular(path, "packed dataset", &fd));
  struct stat st;
  if (fstat(fd, &st) != 0 || img_off + img_len > (int64_t)st.st_size ||
      list_off + list_len > (int64_t)st.st_size) {
    close(fd);
    return SCL_ERROR(SCL_ERR_FORMAT, "%s: truncated packed dataset", path);
  }
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  SCL_CHECK(map != MAP_FAILED, SCL_ERR_IO, "%s: mmap: %s", path, strerror(errno));
  ds->map = map;
  ds->map_len = (size_t)st.st_size;
  ds->pack_blob = (const uint8_t *)map + img_off;
  pk->list_blob = (const uint8_t *)map + list_off;
  return SCL_OK;
}

int64_t ds_list_pack_find(const ds_list_pack *pk, const char *path) {
  int64_t lo = 0, hi = pk->n_paths;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int c = strcmp(pk->paths[mid], path);
    if (c == 0) return mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

scl_err ds_list_pack_read(const data_dataset *ds, int64_t i, data_image *img) {
  char name[4200];
  snprintf(name, sizeof name, "%s:%s", ds->root, strpool_get(&ds->paths, i));
  int64_t a = ds->pack_offsets[2 * i], b = ds->pack_offsets[2 * i + 1];
  SCL_CALL(io_image_decode(ds->pack_blob + a, (size_t)(b - a), name, img));
  return SCL_OK;
}
