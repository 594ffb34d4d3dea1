/* learn_blob.h: the record files learn_ref.py and learn_driver exchange.
 *
 * A file is the 8 bytes "SCLBLOB1" followed by records until end of file, all little-endian:
 *   u32 name_len, name bytes (no NUL), u32 dtype (0 f32, 1 f64, 2 i64), u32 ndim,
 *   i64 shape[ndim], then prod(shape) elements.
 * The driver reads every record into its own allocation (so the data is aligned) and looks
 * tensors up by name and element count; it writes its outputs as 1-D records, which the Python
 * side reshapes. Test-only code: a malformed file or a missing tensor ends the program. */
#ifndef SAFECL_TESTS_LEARN_BLOB_H
#define SAFECL_TESTS_LEARN_BLOB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BLOB_F32 = 0, BLOB_F64 = 1, BLOB_I64 = 2, BLOB_MAX = 64 };

typedef struct blob_entry {
  char name[64];
  uint32_t dtype;
  int64_t n;
  void *data;
} blob_entry;

typedef struct blob {
  int count;
  blob_entry e[BLOB_MAX];
} blob;

static void blob_die(const char *what, const char *name) {
  fprintf(stderr, "learn_driver: %s '%s'\n", what, name);
  exit(2);
}

static size_t blob_esize(uint32_t dtype) { return dtype == BLOB_F32 ? 4 : 8; }

static void blob_read(const char *path, blob *b) {
  FILE *f = fopen(path, "rb");
  char magic[8];
  if (!f || fread(magic, 1, 8, f) != 8 || memcmp(magic, "SCLBLOB1", 8) != 0)
    blob_die("cannot read blob file", path);
  b->count = 0;
  uint32_t len;
  while (fread(&len, 4, 1, f) == 1) {
    if (b->count == BLOB_MAX || len >= sizeof b->e[0].name) blob_die("too many/long records", path);
    blob_entry *e = &b->e[b->count++];
    uint32_t ndim;
    int ok = fread(e->name, 1, len, f) == len && fread(&e->dtype, 4, 1, f) == 1 &&
             fread(&ndim, 4, 1, f) == 1 && e->dtype <= BLOB_I64 && ndim <= 8;
    e->name[ok ? len : 0] = '\0';
    e->n = 1;
    for (uint32_t d = 0; ok && d < ndim; d++) {
      int64_t s;
      ok = fread(&s, 8, 1, f) == 1 && s >= 0;
      e->n *= s;
    }
    e->data = ok ? malloc((size_t)e->n * blob_esize(e->dtype) + 8) : NULL;
    if (!e->data || fread(e->data, blob_esize(e->dtype), (size_t)e->n, f) != (size_t)e->n)
      blob_die("truncated record in", path);
  }
  fclose(f);
}

static void blob_free(blob *b) {
  for (int i = 0; i < b->count; i++) free(b->e[i].data);
  b->count = 0;
}

/* The data of tensor `name` of type dtype with n elements (n < 0: any; *got receives it). */
static void *blob_get(const blob *b, const char *name, uint32_t dtype, int64_t n, int64_t *got) {
  for (int i = 0; i < b->count; i++) {
    const blob_entry *e = &b->e[i];
    if (strcmp(e->name, name) != 0) continue;
    if (e->dtype != dtype || (n >= 0 && e->n != n)) blob_die("wrong type or size of", name);
    if (got) *got = e->n;
    return e->data;
  }
  blob_die("missing tensor", name);
  return NULL;
}

#define BLOB_F(b, name, n) ((float *)blob_get((b), (name), BLOB_F32, (n), NULL))
#define BLOB_D(b, name, n) ((double *)blob_get((b), (name), BLOB_F64, (n), NULL))
#define BLOB_I(b, name, n) ((int64_t *)blob_get((b), (name), BLOB_I64, (n), NULL))

static FILE *blob_create(const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite("SCLBLOB1", 1, 8, f) != 8) blob_die("cannot write", path);
  return f;
}

static void blob_put(FILE *f, const char *name, uint32_t dtype, const void *data, int64_t n) {
  uint32_t len = (uint32_t)strlen(name), ndim = 1;
  int ok = fwrite(&len, 4, 1, f) == 1 && fwrite(name, 1, len, f) == len &&
           fwrite(&dtype, 4, 1, f) == 1 && fwrite(&ndim, 4, 1, f) == 1 &&
           fwrite(&n, 8, 1, f) == 1 &&
           (n == 0 || fwrite(data, blob_esize(dtype), (size_t)n, f) == (size_t)n);
  if (!ok) blob_die("cannot write record", name);
}

#endif /* SAFECL_TESTS_LEARN_BLOB_H */
