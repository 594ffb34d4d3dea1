/* packed.c: class-folder datasets packed into one HDF5 file (`safecl pack`), and their reader.
 *
 * A cluster job that opens 100,000 small files per epoch hammers the metadata server of a
 * parallel filesystem; a packed dataset is one file. Layout (schema 1):
 *   /<split>/blob      all encoded images of the split, back to back (contiguous uint8)
 *   /<split>/offsets   n + 1 int64: image i is blob[offsets[i], offsets[i+1])
 *   /<split>/labels    n int32;  /<split>/paths  n strings (the folder dataset's sample names)
 *   /<split>/class_names;  attributes manifest_hi, manifest_lo on /<split>
 * The manifest is the folder dataset's own, so a trial has the same identity whether it reads
 * the folder or the pack. The reader takes the metadata through HDF5, then maps the file and
 * decodes straight from the blob: no HDF5 call per image, safe from many threads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset_impl.h"
#include "safecl/h5.h"

#define PACK_SCHEMA_VERSION 1

static scl_err read_file(const char *path, uint8_t **buf, size_t *cap, size_t *len) {
  FILE *f = NULL;
  SCL_CALL(scl_fopen_regular(path, "image", &f));
  struct stat st;
  scl_err err = SCL_OK;
  SCL_CHECK_GOTO(err, done, fstat(fileno(f), &st) == 0, SCL_ERR_IO, "%s: cannot stat", path);
  *len = (size_t)st.st_size;
  if (*len > *cap) {
    uint8_t *grown = realloc(*buf, *len);
    SCL_CHECK_GOTO(err, done, grown, SCL_ERR_NOMEM, "%s: %zu bytes", path, *len);
    *buf = grown;
    *cap = *len;
  }
  if (*len && fread(*buf, 1, *len, f) != *len)
    SCL_ERROR_GOTO(err, done, SCL_ERR_IO, "%s: short read", path);
done:
  fclose(f);
  return err;
}

/* Writes one split of the folder dataset at root into f. */
static scl_err pack_split(h5_file *f, const char *root, const char *split) {
  data_source src = {.format = "folder", .root = root, .split = split};
  data_dataset *ds = NULL;
  SCL_CALL(data_dataset_open(&src, &ds));
  int64_t n = ds->count, *offsets = NULL;
  const char **paths = NULL, **classes = NULL;
  uint8_t *buf = NULL;
  size_t cap = 0, len = 0;
  char name[64], path[4096];
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc((size_t)(n + 1) * 8, "pack offsets", (void **)&offsets), done);
  paths = malloc((size_t)n * sizeof *paths);
  classes = malloc((size_t)ds->n_classes * sizeof *classes);
  SCL_CHECK_GOTO(err, done, paths && classes, SCL_ERR_NOMEM, "pack tables");
  offsets[0] = 0;
  for (int64_t i = 0; i < n; i++) { /* sizes first: the blob is allocated once */
    struct stat st;
    paths[i] = strpool_get(&ds->paths, i);
    snprintf(path, sizeof path, "%s/%s", root, paths[i]);
    SCL_CHECK_GOTO(err, done, stat(path, &st) == 0, SCL_ERR_IO, "%s: cannot stat", path);
    offsets[i + 1] = offsets[i] + (int64_t)st.st_size;
  }
  for (int64_t c = 0; c < ds->n_classes; c++) classes[c] = strpool_get(&ds->classes, c);
  snprintf(name, sizeof name, "%s/blob", split);
  SCL_CALL_GOTO(err, h5_blob_create(f, name, offsets[n] > 0 ? offsets[n] : 1), done);
  for (int64_t i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", root, paths[i]);
    SCL_CALL_GOTO(err, read_file(path, &buf, &cap, &len), done);
    SCL_CHECK_GOTO(err, done, (int64_t)len == offsets[i + 1] - offsets[i], SCL_ERR_IO,
                   "%s changed size while packing", path);
    SCL_CALL_GOTO(err, h5_blob_write(f, name, offsets[i], buf, (int64_t)len), done);
  }
  snprintf(name, sizeof name, "%s/offsets", split);
  SCL_CALL_GOTO(err, h5_write_i64_1d(f, name, offsets, n + 1), done);
  snprintf(name, sizeof name, "%s/labels", split);
  SCL_CALL_GOTO(err, h5_write_i32_1d(f, name, ds->labels, n), done);
  snprintf(name, sizeof name, "%s/paths", split);
  SCL_CALL_GOTO(err, h5_write_strings(f, name, paths, n), done);
  snprintf(name, sizeof name, "%s/class_names", split);
  SCL_CALL_GOTO(err, h5_write_strings(f, name, classes, ds->n_classes), done);
  SCL_CALL_GOTO(err, h5_attr_write_i64(f, split, "manifest_hi", (int64_t)ds->manifest.hi), done);
  SCL_CALL_GOTO(err, h5_attr_write_i64(f, split, "manifest_lo", (int64_t)ds->manifest.lo), done);
  SCL_INFO("pack: %s: %lld images, %.1f MB", split, (long long)n, (double)offsets[n] / 1e6);
done:
  free(buf);
  free(paths);
  free(classes);
  scl_free(offsets);
  data_dataset_close(&ds);
  return err;
}

scl_err data_pack(const char *root, const char *out) {
  h5_file *f = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, h5_file_create_atomic(out, &f), done);
  SCL_CALL_GOTO(err, h5_write_provenance(f, PACK_SCHEMA_VERSION), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "kind", "packed-dataset"), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "source_root", root), done);
  SCL_CALL_GOTO(err, pack_split(f, root, "train"), done);
  SCL_CALL_GOTO(err, pack_split(f, root, "test"), done);
  SCL_CALL_GOTO(err, h5_file_commit(&f), done);
done:
  h5_file_abort(&f);
  return err;
}

/* Other safecl files (trial.h5, features) share the schema attribute: the kind tells them apart. */
static scl_err check_kind(h5_file *f, const char *path) {
  int exists = 0;
  char *kind = NULL;
  SCL_CALL(h5_attr_exists(f, "/", "kind", &exists));
  SCL_CHECK(exists, SCL_ERR_FORMAT, "%s: no 'kind' attribute: not a packed dataset", path);
  SCL_CALL(h5_attr_read_str(f, "/", "kind", &kind));
  const int ok = strcmp(kind, "packed-dataset") == 0;
  scl_err err =
      ok ? SCL_OK
         : SCL_ERROR(SCL_ERR_FORMAT, "%s: kind is '%s', not 'packed-dataset': not a packed dataset",
                     path, kind);
  free(kind);
  return err;
}

/* Copies the split's metadata out of the HDF5 file into ds, checking what later reads index
 * with: one path per label, and every label a class of class_names. */
static scl_err load_meta(data_dataset *ds, h5_file *f, const char *split) {
  char name[64];
  int ndim = 0;
  int64_t dims[H5_MAX_DIMS], cap = 0, nc = 0, hi = 0, lo = 0;
  char **strs = NULL;
  snprintf(name, sizeof name, "%s/labels", split);
  SCL_CALL(h5_dataset_shape(f, name, &ndim, dims));
  ds->count = dims[0];
  SCL_CALL(ds_labels_reserve(ds, ds->count, &cap));
  SCL_CALL(h5_read_i32_1d(f, name, ds->labels, ds->count));
  SCL_CALL(scl_alloc((size_t)(ds->count + 1) * 8, "pack offsets", (void **)&ds->pack_offsets));
  snprintf(name, sizeof name, "%s/offsets", split);
  SCL_CALL(h5_read_i64_1d(f, name, ds->pack_offsets, ds->count + 1));
  snprintf(name, sizeof name, "%s/paths", split);
  SCL_CALL(h5_read_strings(f, name, &strs, &nc));
  if (nc != ds->count) {
    h5_strings_free(strs, nc);
    return SCL_ERROR(SCL_ERR_FORMAT, "%s: %s holds %lld paths but %s/labels %lld labels", ds->root,
                     name, (long long)nc, split, (long long)ds->count);
  }
  scl_err err = SCL_OK;
  for (int64_t i = 0; i < nc && !err; i++) err = strpool_add(&ds->paths, strs[i], strlen(strs[i]));
  h5_strings_free(strs, nc);
  if (err) return SCL_TRACE(err);
  snprintf(name, sizeof name, "%s/class_names", split);
  SCL_CALL(h5_read_strings(f, name, &strs, &nc));
  for (int64_t i = 0; i < nc && !err; i++)
    err = strpool_add(&ds->classes, strs[i], strlen(strs[i]));
  h5_strings_free(strs, nc);
  if (err) return SCL_TRACE(err);
  SCL_CHECK(nc >= 1, SCL_ERR_FORMAT, "%s: %s is empty", ds->root, name);
  ds->n_classes = nc;
  for (int64_t i = 0; i < ds->count; i++)
    SCL_CHECK(ds->labels[i] >= 0 && ds->labels[i] < nc, SCL_ERR_FORMAT,
              "%s: %s/labels[%lld] = %d is not a class: %s names %lld classes (labels 0 to "
              "%lld)",
              ds->root, split, (long long)i, (int)ds->labels[i], name, (long long)nc,
              (long long)nc - 1);
  SCL_CALL(h5_attr_read_i64(f, split, "manifest_hi", &hi));
  SCL_CALL(h5_attr_read_i64(f, split, "manifest_lo", &lo));
  ds->manifest = (scl_hash){(uint64_t)hi, (uint64_t)lo};
  return SCL_OK;
}

scl_err ds_packed_open(data_dataset *ds, const data_source *src) {
  h5_file *f = NULL;
  char name[64];
  int64_t blob_off = 0, blob_len = 0;
  scl_err err = SCL_OK;
  if (!(ds->root = strdup(src->root))) return SCL_ERROR(SCL_ERR_NOMEM, "pack path");
  SCL_CALL_GOTO(err, h5_file_open_read(src->root, &f), done);
  SCL_CALL_GOTO(err, h5_check_schema(f, PACK_SCHEMA_VERSION, "packed dataset"), done);
  SCL_CALL_GOTO(err, check_kind(f, src->root), done);
  SCL_CALL_GOTO(err, load_meta(ds, f, src->split), done);
  snprintf(name, sizeof name, "%s/blob", src->split);
  SCL_CALL_GOTO(err, h5_blob_locate(f, name, &blob_off, &blob_len), done);
  SCL_CHECK_GOTO(err, done, ds->pack_offsets[0] == 0 && ds->pack_offsets[ds->count] <= blob_len,
                 SCL_ERR_FORMAT, "%s: %s offsets exceed the blob", src->root, src->split);
  for (int64_t i = 0; i < ds->count; i++)
    SCL_CHECK_GOTO(err, done, ds->pack_offsets[i + 1] >= ds->pack_offsets[i], SCL_ERR_FORMAT,
                   "%s: %s offsets decrease at %lld", src->root, src->split, (long long)i);
  int fd = -1;
  SCL_CALL_GOTO(err, scl_open_regular(src->root, "packed dataset", &fd), done);
  struct stat st;
  if (fstat(fd, &st) != 0 || blob_off + blob_len > (int64_t)st.st_size) {
    close(fd);
    SCL_ERROR_GOTO(err, done, SCL_ERR_FORMAT, "%s: truncated packed dataset", src->root);
  }
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  SCL_CHECK_GOTO(err, done, map != MAP_FAILED, SCL_ERR_IO, "%s: mmap: %s", src->root,
                 strerror(errno));
  ds->map = map;
  ds->map_len = (size_t)st.st_size;
  ds->pack_blob = (const uint8_t *)map + blob_off;
done:
  if (f) {
    scl_err close_err = h5_file_close(&f);
    if (!err) err = close_err;
  }
  return err;
}

scl_err ds_packed_read(const data_dataset *ds, int64_t i, data_image *img) {
  char name[4200];
  snprintf(name, sizeof name, "%s:%s", ds->root, strpool_get(&ds->paths, i));
  int64_t a = ds->pack_offsets[i], b = ds->pack_offsets[i + 1];
  SCL_CALL(io_image_decode(ds->pack_blob + a, (size_t)(b - a), name, img));
  return SCL_OK;
}

void ds_packed_close(data_dataset *ds) {
  if (ds->map) munmap((void *)ds->map, ds->map_len);
  ds->map = NULL;
  scl_free(ds->pack_offsets);
  ds->pack_offsets = NULL;
}
