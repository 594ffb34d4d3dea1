/* dataset.c: the data_dataset interface: open by format name, accessors, close, and the
 * helpers the format readers share (string pools, manifest records).
 *
 * Every reader materialises its whole sample list at open time (labels, stable names, the
 * manifest hash), so accessors are O(1), never fail and never touch the filesystem; only
 * data_dataset_read does I/O. The price is memory for the names, about 40 bytes a sample (4 MB
 * for 100k images), which is small next to one batch of activations. A per-class limit is
 * applied here, once for every format: the reader's list stays whole and an index table maps the
 * kept samples onto it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* String pools                                                                              */

scl_err strpool_add(strpool *p, const char *s, size_t len) {
  if (p->n == p->n_cap) {
    int64_t cap = p->n_cap ? 2 * p->n_cap : 64;
    size_t *off = realloc(p->off, (size_t)cap * sizeof *off);
    SCL_CHECK(off, SCL_ERR_NOMEM, "cannot grow a name table to %lld", (long long)cap);
    p->off = off;
    p->n_cap = cap;
  }
  if (len + 1 > p->cap - p->len) {
    size_t cap = p->cap ? 2 * p->cap : 4096;
    while (len + 1 > cap - p->len) cap *= 2;
    char *buf = realloc(p->buf, cap);
    SCL_CHECK(buf, SCL_ERR_NOMEM, "cannot grow a name pool to %zu bytes", cap);
    p->buf = buf;
    p->cap = cap;
  }
  memcpy(p->buf + p->len, s, len);
  p->buf[p->len + len] = '\0';
  p->off[p->n++] = p->len;
  p->len += len + 1;
  return SCL_OK;
}

scl_err strpool_addf(strpool *p, const char *fmt, ...) {
  char tmp[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  SCL_CHECK(n >= 0 && (size_t)n < sizeof tmp, SCL_ERR_ARG, "name too long (%d bytes): %.64s...", n,
            tmp);
  SCL_CALL(strpool_add(p, tmp, (size_t)n));
  return SCL_OK;
}

const char *strpool_get(const strpool *p, int64_t i) { return p->buf + p->off[i]; }

void strpool_free(strpool *p) {
  free(p->buf);
  free(p->off);
  memset(p, 0, sizeof *p);
}

scl_err ds_labels_reserve(data_dataset *ds, int64_t n, int64_t *cap) {
  if (n <= *cap) return SCL_OK;
  int64_t want = *cap ? *cap : 1024;
  while (want < n) want *= 2;
  int32_t *l = realloc(ds->labels, (size_t)want * sizeof *l);
  SCL_CHECK(l, SCL_ERR_NOMEM, "cannot allocate %lld labels", (long long)want);
  ds->labels = l;
  *cap = want;
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Manifest                                                                                  */

void ds_manifest_u64(scl_hasher *h, uint64_t v) {
  uint8_t b[8];
  for (int k = 0; k < 8; k++) b[k] = (uint8_t)(v >> (8 * k));
  scl_hasher_update(h, b, sizeof b);
}

void ds_manifest_begin(scl_hasher *h, const char *format, const char *split) {
  static const char tag[] = "safecl-manifest-v1";
  scl_hasher_update(h, tag, sizeof tag);
  scl_hasher_update(h, format, strlen(format) + 1);
  scl_hasher_update(h, split, strlen(split) + 1);
}

void ds_manifest_record(scl_hasher *h, const char *path, int64_t label, uint64_t size) {
  scl_hasher_update(h, path, strlen(path) + 1);
  ds_manifest_u64(h, (uint64_t)label);
  ds_manifest_u64(h, size);
}

/* ---------------------------------------------------------------------------------------- */
/* Interface                                                                                 */

/* Keeps the first `limit` samples of every (domain, class) in the reader's order and folds the
 * limit into the manifest hash. */
static scl_err apply_limit(data_dataset *ds, int64_t limit) {
  int64_t n_dom = ds->domain_of && ds->n_domains > 0 ? ds->n_domains : 1;
  size_t cells;
  SCL_CHECK(!scl_mul_overflows((size_t)n_dom, (size_t)(ds->n_classes ? ds->n_classes : 1), &cells),
            SCL_ERR_ARG, "dataset.limit: %lld domains x %lld classes", (long long)n_dom,
            (long long)ds->n_classes);
  int64_t *seen = NULL, *keep = NULL;
  SCL_CALL(scl_calloc(cells * sizeof *seen, "dataset.limit: samples per class", (void **)&seen));
  scl_err err = scl_alloc((size_t)(ds->count ? ds->count : 1) * sizeof *keep,
                          "dataset.limit: kept samples", (void **)&keep);
  if (err) {
    scl_free(seen);
    return SCL_TRACE(err);
  }
  int64_t n = 0;
  for (int64_t i = 0; i < ds->count; i++) {
    int64_t d = ds->domain_of ? ds->domain_of[i] : 0;
    int64_t *c = &seen[d * ds->n_classes + ds->labels[i]];
    if (*c < limit) keep[n++] = i;
    (*c)++;
  }
  scl_free(seen);
  ds->keep = keep;
  ds->count = n;
  scl_hasher *h = NULL;
  SCL_CALL(scl_hasher_create(&h));
  static const char tag[] = "safecl-limit-v1";
  scl_hasher_update(h, tag, sizeof tag);
  ds_manifest_u64(h, ds->manifest.hi);
  ds_manifest_u64(h, ds->manifest.lo);
  ds_manifest_u64(h, (uint64_t)limit);
  ds->manifest = scl_hasher_digest(h);
  scl_hasher_destroy(&h);
  return SCL_OK;
}

/* The reader's index of sample i. */
static int64_t base(const data_dataset *ds, int64_t i) { return ds->keep ? ds->keep[i] : i; }

scl_err data_dataset_open(const data_source *src, data_dataset **out) {
  *out = NULL;
  SCL_CHECK(src && src->format && src->split, SCL_ERR_ARG,
            "dataset source needs a format and a split");
  if (strcmp(src->split, "train") != 0 && strcmp(src->split, "test") != 0)
    return SCL_ERROR(SCL_ERR_ARG, "dataset split '%s': expected \"train\" or \"test\"", src->split);
  data_dataset *ds = calloc(1, sizeof *ds);
  SCL_CHECK(ds, SCL_ERR_NOMEM, "cannot allocate a dataset");
  scl_err err = SCL_OK;
  ds->max_image_pixels = src->max_image_pixels;
  struct stat st;
  int packed = src->root && stat(src->root, &st) == 0 && S_ISREG(st.st_mode);
  if (strcmp(src->format, "folder") == 0 && packed) {
    ds->kind = DS_PACKED; /* a file made by `safecl pack` in place of the folder */
    SCL_CALL_GOTO(err, ds_packed_open(ds, src), fail);
  } else if (strcmp(src->format, "folder") == 0) {
    ds->kind = DS_FOLDER;
    SCL_CALL_GOTO(err, ds_folder_open(ds, src), fail);
  } else if (strcmp(src->format, "cifar100") == 0) {
    ds->kind = DS_CIFAR;
    SCL_CALL_GOTO(err, ds_cifar_open(ds, src), fail);
  } else if (strcmp(src->format, "synthetic") == 0) {
    ds->kind = DS_SYNTHETIC;
    SCL_CALL_GOTO(err, ds_synthetic_open(ds, src), fail);
  } else if (strcmp(src->format, "domainnet") == 0) {
    ds->kind = packed ? DS_LIST_PACKED : DS_LIST; /* packed: made by `safecl pack` */
    SCL_CALL_GOTO(err, ds_list_open(ds, src), fail);
  } else {
    SCL_ERROR_GOTO(err, fail, SCL_ERR_ARG,
                   "dataset format '%s': expected \"folder\", \"cifar100\", \"domainnet\" or "
                   "\"synthetic\"",
                   src->format);
  }
  SCL_CHECK_GOTO(err, fail, src->limit >= 0, SCL_ERR_ARG, "dataset.limit = %lld is negative",
                 (long long)src->limit);
  if (src->limit > 0) SCL_CALL_GOTO(err, apply_limit(ds, src->limit), fail);
  SCL_DEBUG("dataset %s %s: %lld samples, %lld classes", src->format, src->split,
            (long long)ds->count, (long long)ds->n_classes);
  *out = ds;
  return SCL_OK;
fail:
  data_dataset_close(&ds);
  return err;
}

void data_dataset_close(data_dataset **ds) {
  if (!ds || !*ds) return;
  data_dataset *d = *ds;
  if (d->kind == DS_CIFAR) ds_cifar_close(d);
  if (d->kind == DS_PACKED || d->kind == DS_LIST_PACKED) ds_packed_close(d);
  strpool_free(&d->paths);
  strpool_free(&d->classes);
  free(d->labels);
  scl_free(d->keep);
  free(d->domain_of);
  free(d->root);
  free(d);
  *ds = NULL;
}

int data_dataset_domain(const data_dataset *ds, int64_t i) {
  return ds->domain_of ? ds->domain_of[base(ds, i)] : 0;
}

int64_t data_dataset_count(const data_dataset *ds) { return ds->count; }

int64_t data_dataset_num_classes(const data_dataset *ds) { return ds->n_classes; }

int64_t data_dataset_label(const data_dataset *ds, int64_t i) { return ds->labels[base(ds, i)]; }

const char *data_dataset_path(const data_dataset *ds, int64_t i) {
  return strpool_get(&ds->paths, base(ds, i));
}

const char *data_dataset_class_name(const data_dataset *ds, int64_t c) {
  return strpool_get(&ds->classes, c);
}

scl_hash data_dataset_manifest_hash(const data_dataset *ds) { return ds->manifest; }

scl_err data_dataset_read(const data_dataset *ds, int64_t i, data_image *img) {
  SCL_CHECK(i >= 0 && i < ds->count, SCL_ERR_ARG, "sample %lld out of range [0, %lld)",
            (long long)i, (long long)ds->count);
  img->max_pixels = ds->max_image_pixels;
  i = base(ds, i);
  switch (ds->kind) {
    case DS_FOLDER:
    case DS_LIST:
      SCL_CALL(ds_folder_read(ds, i, img));
      break;
    case DS_CIFAR:
      SCL_CALL(ds_cifar_read(ds, i, img));
      break;
    case DS_SYNTHETIC:
      SCL_CALL(ds_synthetic_read(ds, i, img));
      break;
    case DS_PACKED:
      SCL_CALL(ds_packed_read(ds, i, img));
      break;
    case DS_LIST_PACKED:
      SCL_CALL(ds_list_pack_read(ds, i, img));
      break;
  }
  return SCL_OK;
}
