/* safetensors.h: reading and writing the .safetensors weight format.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header mapping tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the byte after the
 * header) plus an optional "__metadata__" string map, then the data. The reader maps the file
 * with mmap and validates everything a hostile or truncated file could get wrong (header length,
 * JSON, dtypes, shapes, offsets in bounds and non-overlapping, shape x dtype size = byte span,
 * integer overflow) before handing out any tensor. F32, F16 and BF16 tensors are converted to
 * fp32 on read. The writer writes F32 only, via write-then-rename. */
#ifndef SAFECL_SAFETENSORS_H
#define SAFECL_SAFETENSORS_H

#include "safecl/core.h"

#define IO_ST_MAX_DIMS 8

typedef enum { IO_DTYPE_F32 = 0, IO_DTYPE_F16, IO_DTYPE_BF16 } io_dtype;

typedef struct io_tensor_info {
  const char *name; /* owned by the io_safetensors object */
  io_dtype dtype;
  int ndim;
  int64_t shape[IO_ST_MAX_DIMS];
  int64_t numel;
  const void *data; /* points into the mapping; valid until close */
  size_t nbytes;
} io_tensor_info;

typedef struct io_safetensors io_safetensors;

/* Opens and validates `path`; every failure names the file and, where relevant, the tensor. */
SCL_NODISCARD scl_err io_safetensors_open(const char *path, io_safetensors **out);
void io_safetensors_close(io_safetensors **st);
const char *io_safetensors_path(const io_safetensors *st);
int io_safetensors_count(const io_safetensors *st);
const io_tensor_info *io_safetensors_at(const io_safetensors *st, int i); /* in file order */
const io_tensor_info *io_safetensors_find(const io_safetensors *st, const char *name); /* or NULL */
/* The value of a "__metadata__" key, or NULL. */
const char *io_safetensors_metadata(const io_safetensors *st, const char *key);
/* Number of "__metadata__" entries, and entry i (0 <= i < count) in header order: returns 1 and
 * sets *key and *value (owned by st, valid until close), or 0 when i is out of range. */
int io_safetensors_metadata_count(const io_safetensors *st);
int io_safetensors_metadata_at(const io_safetensors *st, int i, const char **key,
                               const char **value);
/* Converts tensor t to fp32 into dst, which holds exactly `count` floats (count must equal
 * t->numel, else SCL_ERR_ARG naming the tensor). */
SCL_NODISCARD scl_err io_safetensors_read_f32(const io_safetensors *st, const io_tensor_info *t,
                                              float *dst, int64_t count);

/* Exact conversions of one little-endian-decoded IEEE half / bfloat16 to fp32 (subnormals,
 * infinities and NaNs included). */
float io_f16_to_f32(uint16_t h);
float io_bf16_to_f32(uint16_t b);

/* One tensor to write. */
typedef struct io_st_entry {
  const char *name;
  int ndim;
  int64_t shape[IO_ST_MAX_DIMS];
  const float *data;
} io_st_entry;

/* Writes the entries as F32 (sorted by name, as the Python library does) with optional string
 * metadata (n_meta key/value pairs, may be 0), to path.tmp.<pid> then renames it to path
 * (publish.h): an existing file at path survives any failure. */
SCL_NODISCARD scl_err io_safetensors_write(const char *path, const io_st_entry *entries, int n,
                                           const char *const *meta_keys,
                                           const char *const *meta_values, int n_meta);

#endif /* SAFECL_SAFETENSORS_H */
