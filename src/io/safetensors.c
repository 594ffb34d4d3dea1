/* safetensors.c: a validating reader and an F32 writer for the .safetensors format.
 *
 * The reader maps the whole file read-only and parses the JSON header with cJSON, then checks
 * everything a truncated, hand-edited or hostile file could get wrong before any tensor is handed
 * out: header length, JSON shape, dtype, shape, offsets in bounds, no overlaps, shape x dtype size
 * equal to the byte span, no integer overflow, no duplicate names. Every message names the file
 * and, where one is involved, the tensor, because the person reading it is usually looking at a
 * checkpoint they did not write. JSON numbers arrive as doubles, so shape and offset values above
 * 2^53 are refused rather than rounded. Tensor data is not copied on open; io_safetensors_read_f32
 * converts F16/BF16 (exactly) or copies F32 into the caller's buffer. The data pointer may be
 * unaligned (other writers need not pad the header), so it is only ever read with memcpy.
 *
 * The writer produces what the Python library produces for F32 tensors: compact JSON with
 * "__metadata__" first and tensors sorted by name, header padded with spaces to a multiple of 8
 * bytes, data contiguous in the same order; it publishes through publish.h. Big-endian hosts are
 * not supported (the format is little-endian and we copy raw bytes). */
#include "safecl/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safecl/publish.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

_Static_assert(sizeof(size_t) >= 8, "safetensors.c assumes 64-bit sizes");

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* the Python library's limit */
#define ST_MAX_JSON_INT 9007199254740992.0          /* 2^53: doubles are exact below */
#define ST_META "__metadata__"

struct io_safetensors {
  char *path;
  unsigned char *map;
  size_t map_len;
  const unsigned char *data; /* the data section, after the header */
  size_t data_len;
  cJSON *header; /* kept alive: tensor names and metadata strings point into it */
  int count;
  io_tensor_info *tensors;
  int n_meta;
  const char **meta_keys;
  const char **meta_values;
};

/* A tensor's byte range inside the data section, for the overlap check. */
typedef struct st_span {
  size_t begin, end;
  int index;
} st_span;

/* ---------------------------------------------------------------------------------------- */
/* Opening and mapping                                                                       */

static scl_err st_map(io_safetensors *st) {
  int fd = -1;
  SCL_CALL(scl_open_regular(st->path, "safetensors file", &fd));
  struct stat sb;
  scl_err err = SCL_OK;
  if (fstat(fd, &sb) != 0)
    err =
        SCL_ERROR(SCL_ERR_IO, "safetensors file '%s': cannot stat: %s", st->path, strerror(errno));
  else if (sb.st_size < 8)
    err = SCL_ERROR(SCL_ERR_FORMAT,
                    "safetensors file '%s': only %lld bytes, shorter than the 8-byte header "
                    "length (truncated or not a safetensors file)",
                    st->path, (long long)sb.st_size);
  if (!err) {
    st->map_len = (size_t)sb.st_size;
    void *m = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
      err = SCL_ERROR(SCL_ERR_IO, "safetensors file '%s': cannot mmap %zu bytes: %s", st->path,
                      st->map_len, strerror(errno));
    else
      st->map = m;
  }
  close(fd);
  return err;
}

/* ---------------------------------------------------------------------------------------- */
/* Header validation                                                                         */

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int st_json_uint(const cJSON *v, size_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0.0) || d > ST_MAX_JSON_INT || d != (double)(uint64_t)d) return 0;
  *out = (size_t)(uint64_t)d;
  return 1;
}

static scl_err st_parse_dtype(const io_safetensors *st, const cJSON *entry, const char *name,
                              io_tensor_info *t) {
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
  SCL_CHECK(dt, SCL_ERR_FORMAT, "safetensors file '%s': tensor '%s': missing \"dtype\"", st->path,
            name);
  SCL_CHECK(cJSON_IsString(dt), SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': \"dtype\" is not a string", st->path, name);
  if (strcmp(dt->valuestring, "F32") == 0)
    t->dtype = IO_DTYPE_F32;
  else if (strcmp(dt->valuestring, "F16") == 0)
    t->dtype = IO_DTYPE_F16;
  else if (strcmp(dt->valuestring, "BF16") == 0)
    t->dtype = IO_DTYPE_BF16;
  else
    return SCL_ERROR(SCL_ERR_FORMAT,
                     "safetensors file '%s': tensor '%s': dtype '%s' is not supported "
                     "(safecl reads F32, F16 and BF16 only)",
                     st->path, name, dt->valuestring);
  return SCL_OK;
}

static scl_err st_parse_shape(const io_safetensors *st, const cJSON *entry, const char *name,
                              io_tensor_info *t, size_t *numel_out) {
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
  SCL_CHECK(shape, SCL_ERR_FORMAT, "safetensors file '%s': tensor '%s': missing \"shape\"",
            st->path, name);
  SCL_CHECK(cJSON_IsArray(shape), SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': \"shape\" is not an array", st->path, name);
  int ndim = cJSON_GetArraySize(shape);
  SCL_CHECK(ndim <= IO_ST_MAX_DIMS, SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': %d dimensions, more than the %d "
            "supported",
            st->path, name, ndim, IO_ST_MAX_DIMS);
  size_t numel = 1;
  int k = 0;
  const cJSON *dim;
  cJSON_ArrayForEach(dim, shape) {
    size_t n;
    SCL_CHECK(st_json_uint(dim, &n), SCL_ERR_FORMAT,
              "safetensors file '%s': tensor '%s': shape[%d] is not a non-negative "
              "integer below 2^53",
              st->path, name, k);
    SCL_CHECK(!scl_mul_overflows(numel, n, &numel), SCL_ERR_FORMAT,
              "safetensors file '%s': tensor '%s': element count overflows at "
              "shape[%d]",
              st->path, name, k);
    t->shape[k++] = (int64_t)n;
  }
  t->ndim = ndim;
  *numel_out = numel;
  return SCL_OK;
}

static scl_err st_parse_offsets(const io_safetensors *st, const cJSON *entry, const char *name,
                                st_span *span) {
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
  SCL_CHECK(off, SCL_ERR_FORMAT, "safetensors file '%s': tensor '%s': missing \"data_offsets\"",
            st->path, name);
  SCL_CHECK(cJSON_IsArray(off) && cJSON_GetArraySize(off) == 2 &&
                st_json_uint(cJSON_GetArrayItem(off, 0), &span->begin) &&
                st_json_uint(cJSON_GetArrayItem(off, 1), &span->end),
            SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': \"data_offsets\" is not an array of "
            "two non-negative integers",
            st->path, name);
  SCL_CHECK(span->begin <= span->end, SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': data_offsets begin %zu > end %zu", st->path, name,
            span->begin, span->end);
  SCL_CHECK(span->end <= st->data_len, SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': data_offsets end %zu is beyond the "
            "%zu-byte data section (truncated file?)",
            st->path, name, span->end, st->data_len);
  return SCL_OK;
}

static scl_err st_parse_entry(const io_safetensors *st, const cJSON *entry, io_tensor_info *t,
                              st_span *span) {
  const char *name = entry->string;
  SCL_CHECK(cJSON_IsObject(entry), SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': header entry is not a JSON object", st->path,
            name);
  t->name = name;
  SCL_CALL(st_parse_dtype(st, entry, name, t));
  size_t numel = 0, nbytes = 0;
  SCL_CALL(st_parse_shape(st, entry, name, t, &numel));
  SCL_CALL(st_parse_offsets(st, entry, name, span));
  size_t esize = t->dtype == IO_DTYPE_F32 ? 4 : 2;
  SCL_CHECK(!scl_mul_overflows(numel, esize, &nbytes) && numel <= (size_t)INT64_MAX, SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': byte size of %zu elements overflows", st->path,
            name, numel);
  SCL_CHECK(nbytes == span->end - span->begin, SCL_ERR_FORMAT,
            "safetensors file '%s': tensor '%s': shape holds %zu elements = %zu bytes "
            "but data_offsets span %zu bytes",
            st->path, name, numel, nbytes, span->end - span->begin);
  t->numel = (int64_t)numel;
  t->nbytes = nbytes;
  t->data = st->data + span->begin;
  return SCL_OK;
}

static scl_err st_parse_metadata(io_safetensors *st, const cJSON *meta) {
  SCL_CHECK(!st->meta_keys, SCL_ERR_FORMAT, "safetensors file '%s': \"%s\" appears twice", st->path,
            ST_META);
  SCL_CHECK(cJSON_IsObject(meta), SCL_ERR_FORMAT,
            "safetensors file '%s': \"%s\" is not a JSON object", st->path, ST_META);
  int n = cJSON_GetArraySize(meta);
  size_t count = (size_t)(n > 0 ? n : 1);
  st->meta_keys = malloc(count * sizeof *st->meta_keys);
  SCL_CHECK(st->meta_keys, SCL_ERR_NOMEM, "safetensors metadata keys of '%s'", st->path);
  st->meta_values = malloc(count * sizeof *st->meta_values);
  SCL_CHECK(st->meta_values, SCL_ERR_NOMEM, "safetensors metadata values of '%s'", st->path);
  const cJSON *kv;
  cJSON_ArrayForEach(kv, meta) {
    SCL_CHECK(cJSON_IsString(kv), SCL_ERR_FORMAT,
              "safetensors file '%s': %s key '%s' has a value that is not a string", st->path,
              ST_META, kv->string);
    st->meta_keys[st->n_meta] = kv->string;
    st->meta_values[st->n_meta++] = kv->valuestring;
  }
  return SCL_OK;
}

static int st_cmp_name(const void *a, const void *b) {
  const io_tensor_info *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

static int st_cmp_span(const void *a, const void *b) {
  const st_span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* Duplicate names (cJSON keeps both copies of a repeated key) and overlapping byte ranges. */
static scl_err st_check_unique(const io_safetensors *st, st_span *spans) {
  int n = st->count;
  const io_tensor_info **by_name = malloc((size_t)(n > 0 ? n : 1) * sizeof *by_name);
  SCL_CHECK(by_name, SCL_ERR_NOMEM, "tensor index of '%s'", st->path);
  for (int i = 0; i < n; i++) by_name[i] = &st->tensors[i];
  qsort(by_name, (size_t)n, sizeof *by_name, st_cmp_name);
  scl_err err = SCL_OK;
  for (int i = 1; i < n && !err; i++)
    if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0)
      err = SCL_ERROR(SCL_ERR_FORMAT,
                      "safetensors file '%s': tensor '%s' appears more than once in the header",
                      st->path, by_name[i]->name);
  free(by_name);
  SCL_CALL(err);

  qsort(spans, (size_t)n, sizeof *spans, st_cmp_span);
  size_t max_end = 0;
  int owner = -1;
  for (int i = 0; i < n; i++) {
    if (spans[i].begin == spans[i].end) continue; /* empty tensors occupy no bytes */
    if (owner >= 0 && spans[i].begin < max_end)
      return SCL_ERROR(SCL_ERR_FORMAT,
                       "safetensors file '%s': tensor '%s' (bytes %zu..%zu) overlaps tensor "
                       "'%s' (which ends at %zu)",
                       st->path, st->tensors[spans[i].index].name, spans[i].begin, spans[i].end,
                       st->tensors[owner].name, max_end);
    if (spans[i].end > max_end) {
      max_end = spans[i].end;
      owner = spans[i].index;
    }
  }
  return SCL_OK;
}

static scl_err st_parse_json(io_safetensors *st, const char *text, size_t len) {
  const char *end = NULL;
  st->header = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (!st->header) {
    size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
    return SCL_ERROR(SCL_ERR_FORMAT,
                     "safetensors file '%s': header is not valid JSON (error near byte %zu of "
                     "%zu)",
                     st->path, at, len);
  }
  for (const char *p = end; p < text + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0')
      return SCL_ERROR(SCL_ERR_FORMAT,
                       "safetensors file '%s': unexpected bytes after the JSON header "
                       "(at byte %zu of %zu)",
                       st->path, (size_t)(p - text), len);
  SCL_CHECK(cJSON_IsObject(st->header), SCL_ERR_FORMAT,
            "safetensors file '%s': header is not a JSON object", st->path);
  return SCL_OK;
}

static scl_err st_parse_header(io_safetensors *st) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | st->map[i];
  SCL_CHECK(n <= ST_MAX_HEADER, SCL_ERR_FORMAT,
            "safetensors file '%s': header length %llu is absurd (limit %llu bytes); "
            "not a safetensors file?",
            st->path, (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
  SCL_CHECK(n <= st->map_len - 8, SCL_ERR_FORMAT,
            "safetensors file '%s': header length %llu exceeds the %zu bytes after "
            "the length field (truncated file?)",
            st->path, (unsigned long long)n, st->map_len - 8);
  st->data = st->map + 8 + n;
  st->data_len = st->map_len - 8 - (size_t)n;
  SCL_CALL(st_parse_json(st, (const char *)st->map + 8, (size_t)n));

  int items = cJSON_GetArraySize(st->header);
  size_t cap = (size_t)(items > 0 ? items : 1);
  st->tensors = calloc(cap, sizeof *st->tensors);
  SCL_CHECK(st->tensors, SCL_ERR_NOMEM, "tensor table of '%s'", st->path);
  st_span *spans = malloc(cap * sizeof *spans);
  SCL_CHECK(spans, SCL_ERR_NOMEM, "tensor spans of '%s'", st->path);
  scl_err err = SCL_OK;
  const cJSON *item;
  cJSON_ArrayForEach(item, st->header) {
    if (strcmp(item->string, ST_META) == 0) {
      SCL_CALL_GOTO(err, st_parse_metadata(st, item), done);
      continue;
    }
    st_span *span = &spans[st->count];
    SCL_CALL_GOTO(err, st_parse_entry(st, item, &st->tensors[st->count], span), done);
    span->index = st->count++;
  }
  SCL_CALL_GOTO(err, st_check_unique(st, spans), done);
done:
  free(spans);
  return err;
}

/* ---------------------------------------------------------------------------------------- */
/* Public reader API                                                                         */

scl_err io_safetensors_open(const char *path, io_safetensors **out) {
  *out = NULL;
  SCL_CHECK(path, SCL_ERR_ARG, "io_safetensors_open: NULL path");
  io_safetensors *st = calloc(1, sizeof *st);
  SCL_CHECK(st, SCL_ERR_NOMEM, "safetensors handle for '%s'", path);
  scl_err err = SCL_OK;
  st->path = strdup(path);
  SCL_CHECK_GOTO(err, fail, st->path, SCL_ERR_NOMEM, "safetensors path '%s'", path);
  SCL_CALL_GOTO(err, st_map(st), fail);
  SCL_CALL_GOTO(err, st_parse_header(st), fail);
  *out = st;
  return SCL_OK;
fail:
  io_safetensors_close(&st);
  return err;
}

void io_safetensors_close(io_safetensors **pst) {
  if (!pst || !*pst) return;
  io_safetensors *st = *pst;
  if (st->map) munmap(st->map, st->map_len);
  cJSON_Delete(st->header);
  free(st->tensors);
  free(st->meta_keys);
  free(st->meta_values);
  free(st->path);
  free(st);
  *pst = NULL;
}

const char *io_safetensors_path(const io_safetensors *st) { return st->path; }

int io_safetensors_count(const io_safetensors *st) { return st->count; }

const io_tensor_info *io_safetensors_at(const io_safetensors *st, int i) {
  return i >= 0 && i < st->count ? &st->tensors[i] : NULL;
}

const io_tensor_info *io_safetensors_find(const io_safetensors *st, const char *name) {
  for (int i = 0; i < st->count; i++)
    if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
  return NULL;
}

const char *io_safetensors_metadata(const io_safetensors *st, const char *key) {
  for (int i = 0; i < st->n_meta; i++)
    if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
  return NULL;
}

int io_safetensors_metadata_count(const io_safetensors *st) { return st->n_meta; }

int io_safetensors_metadata_at(const io_safetensors *st, int i, const char **key,
                               const char **value) {
  if (i < 0 || i >= st->n_meta) return 0;
  *key = st->meta_keys[i];
  *value = st->meta_values[i];
  return 1;
}

/* IEEE binary16 to binary32, exact for every input: subnormals are renormalised, infinities and
 * NaNs keep their sign and payload. */
float io_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else { /* subnormal: mant x 2^-24; shift until the implicit bit appears */
    uint32_t e = 113;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      e--;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

float io_bf16_to_f32(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

scl_err io_safetensors_read_f32(const io_safetensors *st, const io_tensor_info *t, float *dst,
                                int64_t count) {
  SCL_CHECK(t && t >= st->tensors && t < st->tensors + st->count, SCL_ERR_ARG,
            "safetensors file '%s': tensor handle does not belong to it", st->path);
  SCL_CHECK(count == t->numel, SCL_ERR_ARG,
            "safetensors file '%s': tensor '%s' has %lld elements, caller expects %lld", st->path,
            t->name, (long long)t->numel, (long long)count);
  const unsigned char *src = t->data;
  if (t->dtype == IO_DTYPE_F32) {
    if (t->nbytes) memcpy(dst, src, t->nbytes);
    return SCL_OK;
  }
  for (int64_t i = 0; i < count; i++) {
    uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
    dst[i] = t->dtype == IO_DTYPE_F16 ? io_f16_to_f32(h) : io_bf16_to_f32(h);
  }
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Writer                                                                                    */

static int st_cmp_entry(const void *a, const void *b) {
  const io_st_entry *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

static scl_err st_entry_bytes(const char *path, const io_st_entry *e, size_t *out) {
  SCL_CHECK(e->name && strcmp(e->name, ST_META) != 0, SCL_ERR_ARG,
            "safetensors file '%s': invalid tensor name '%s'", path, e->name ? e->name : "(null)");
  SCL_CHECK(e->ndim >= 0 && e->ndim <= IO_ST_MAX_DIMS, SCL_ERR_ARG,
            "safetensors file '%s': tensor '%s': ndim %d out of 0..%d", path, e->name, e->ndim,
            IO_ST_MAX_DIMS);
  size_t n = sizeof(float);
  for (int k = 0; k < e->ndim; k++)
    SCL_CHECK(e->shape[k] >= 0 && !scl_mul_overflows(n, (size_t)e->shape[k], &n), SCL_ERR_ARG,
              "safetensors file '%s': tensor '%s': shape[%d] = %lld is negative or "
              "overflows",
              path, e->name, k, (long long)e->shape[k]);
  if (n && !e->data)
    return SCL_ERROR(SCL_ERR_ARG, "safetensors file '%s': tensor '%s': NULL data", path, e->name);
  *out = n;
  return SCL_OK;
}

/* Adds obj[key] = a JSON array of integers printed exactly (cJSON would print large doubles in
 * %g form, which the Python library refuses). Returns 0 when out of memory. */
static int st_add_ints(cJSON *obj, const char *key, const int64_t *v, int n) {
  cJSON *arr = cJSON_AddArrayToObject(obj, key);
  for (int k = 0; arr && k < n; k++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v[k]);
    cJSON *raw = cJSON_CreateRaw(buf);
    if (!raw || !cJSON_AddItemToArray(arr, raw)) {
      cJSON_Delete(raw);
      return 0;
    }
  }
  return arr != NULL;
}

/* Builds the header JSON for entries already sorted by name; NULL only when out of memory or on
 * a duplicate name/metadata key (*dup is then set to it). */
static cJSON *st_build_header(const io_st_entry *const *sorted, int n, const size_t *bytes,
                              const char *const *mk, const char *const *mv, int n_meta,
                              const char **dup) {
  cJSON *root = cJSON_CreateObject();
  cJSON *meta = n_meta > 0 ? cJSON_AddObjectToObject(root, ST_META) : NULL;
  int ok = root && (n_meta == 0 || meta);
  for (int i = 0; ok && i < n_meta; i++) {
    if (cJSON_GetObjectItemCaseSensitive(meta, mk[i])) *dup = mk[i];
    ok = !*dup && cJSON_AddStringToObject(meta, mk[i], mv[i]) != NULL;
  }
  size_t offset = 0;
  for (int i = 0; ok && i < n; i++) {
    if (i > 0 && strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) *dup = sorted[i]->name;
    int64_t off[2] = {(int64_t)offset, (int64_t)(offset + bytes[i])};
    offset += bytes[i];
    cJSON *e = *dup ? NULL : cJSON_AddObjectToObject(root, sorted[i]->name);
    ok = e && cJSON_AddStringToObject(e, "dtype", "F32") &&
         st_add_ints(e, "shape", sorted[i]->shape, sorted[i]->ndim) &&
         st_add_ints(e, "data_offsets", off, 2);
  }
  if (!ok) {
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}

static scl_err st_write_body(int fd, const char *tmp, const char *json,
                             const io_st_entry *const *sorted, int n, const size_t *bytes) {
  size_t len = strlen(json), pad = (8 - len % 8) % 8;
  unsigned char prefix[8];
  uint64_t hl = (uint64_t)(len + pad);
  for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)(hl >> (8 * i));
  SCL_CALL(io_write_all(fd, prefix, 8, tmp));
  SCL_CALL(io_write_all(fd, json, len, tmp));
  SCL_CALL(io_write_all(fd, "        ", pad, tmp));
  for (int i = 0; i < n; i++) SCL_CALL(io_write_all(fd, sorted[i]->data, bytes[i], tmp));
  return SCL_OK;
}

scl_err io_safetensors_write(const char *path, const io_st_entry *entries, int n,
                             const char *const *meta_keys, const char *const *meta_values,
                             int n_meta) {
  if (!path || n < 0 || n_meta < 0 || (n > 0 && !entries) ||
      (n_meta > 0 && (!meta_keys || !meta_values)))
    return SCL_ERROR(SCL_ERR_ARG, "io_safetensors_write '%s': bad arguments",
                     path ? path : "(null)");
  for (int i = 0; i < n_meta; i++)
    SCL_CHECK(meta_keys[i] && meta_values[i], SCL_ERR_ARG,
              "safetensors file '%s': metadata entry %d is NULL", path, i);
  size_t cap = (size_t)(n > 0 ? n : 1);
  const io_st_entry **sorted = NULL;
  size_t *bytes = NULL;
  cJSON *root = NULL;
  char *json = NULL, *tmp = NULL;
  int fd = -1;
  scl_err err = SCL_OK;
  sorted = malloc(cap * sizeof *sorted);
  SCL_CHECK_GOTO(err, done, sorted, SCL_ERR_NOMEM, "tensor order for '%s'", path);
  bytes = malloc(cap * sizeof *bytes);
  SCL_CHECK_GOTO(err, done, bytes, SCL_ERR_NOMEM, "tensor sizes for '%s'", path);
  for (int i = 0; i < n; i++) sorted[i] = &entries[i];
  qsort(sorted, (size_t)n, sizeof *sorted, st_cmp_entry);
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    SCL_CALL_GOTO(err, st_entry_bytes(path, sorted[i], &bytes[i]), done);
    SCL_CHECK_GOTO(err, done, !scl_add_overflows(total, bytes[i], &total), SCL_ERR_ARG,
                   "safetensors file '%s': total size overflows", path);
  }
  const char *dup = NULL;
  root = st_build_header(sorted, n, bytes, meta_keys, meta_values, n_meta, &dup);
  SCL_CHECK_GOTO(err, done, !dup, SCL_ERR_ARG, "safetensors file '%s': name '%s' given twice", path,
                 dup);
  json = root ? cJSON_PrintUnformatted(root) : NULL;
  SCL_CHECK_GOTO(err, done, json, SCL_ERR_NOMEM, "safetensors file '%s': cannot build the header",
                 path);
  SCL_CALL_GOTO(err, io_publish_begin(path, &tmp, &fd), done);
  err = st_write_body(fd, tmp, json, sorted, n, bytes);
  if (close(fd) != 0 && !err)
    err = SCL_ERROR(SCL_ERR_IO, "cannot close '%s': %s", tmp, strerror(errno));
  if (err) {
    SCL_TRACE(err);
    io_publish_abort(tmp);
    goto done;
  }
  SCL_CALL_GOTO(err, io_publish_commit(tmp, path), done);
done:
  free(tmp);
  cJSON_free(json);
  cJSON_Delete(root);
  free(bytes);
  free(sorted);
  return err;
}
