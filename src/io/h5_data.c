/* h5_data.c: writing and reading whole datasets: float32 matrices, 1-D int32/int64/float64
 * vectors and 1-D string arrays.
 *
 * Every dataset is written in one H5Dwrite and read in one H5Dread; there is no hyperslab or
 * streaming interface because the callers (features, labels, metrics, class names) hold whole
 * arrays in memory anyway. Matrices default to contiguous, uncompressed storage: that is what
 * reads back fastest and what the OS page cache handles best; gzip is available for archival
 * files. Reads check the stored rank and dimensions against what the caller expects before
 * reading a byte, so a file written with another D or N is refused with both shapes named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5_internal.h"

/* Formats dims as "(3, 4)" for messages. */
static void h5_shape_str(char *buf, size_t size, int ndim, const hsize_t *dims) {
  size_t used = (size_t)snprintf(buf, size, "(");
  for (int k = 0; k < ndim && used < size; k++)
    used += (size_t)snprintf(buf + used, size - used, k ? ", %llu" : "%llu",
                             (unsigned long long)dims[k]);
  if (used < size) snprintf(buf + used, size - used, ")");
}

static scl_err h5_dims_from(h5_file *f, const char *name, int ndim, const int64_t *in,
                            hsize_t *out) {
  for (int k = 0; k < ndim; k++) {
    SCL_CHECK(in[k] >= 0, SCL_ERR_ARG, "HDF5 file '%s', dataset '%s': negative dimension %lld",
              f->path, name, (long long)in[k]);
    out[k] = (hsize_t)in[k];
  }
  return SCL_OK;
}

/* Creation property list for a row-chunked deflated matrix (about 1 MiB per chunk). */
static hid_t h5_dcpl_gzip(int rank, const hsize_t *dims, size_t esize, int level) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0) return dcpl;
  hsize_t chunk[2] = {1, 1};
  hsize_t row = esize;
  for (int k = 1; k < rank; k++) {
    chunk[k] = dims[k] ? dims[k] : 1;
    row *= chunk[k];
  }
  hsize_t rows = ((hsize_t)1 << 20) / (row ? row : 1);
  if (rows < 1) rows = 1;
  if (dims[0] && rows > dims[0]) rows = dims[0];
  chunk[0] = rows;
  if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_deflate(dcpl, (unsigned)level) < 0) {
    H5Pclose(dcpl);
    return -1;
  }
  return dcpl;
}

/* Creates dataset `name` (with missing parent groups) and writes all of `data`. */
static scl_err h5_write_dataset(h5_file *f, const char *name, hid_t mem_type, hid_t file_type,
                                int rank, const hsize_t *dims, const void *data, int gzip) {
  SCL_CALL(h5_require_writable(f, name));
  SCL_CHECK(name && name[0], SCL_ERR_ARG, "HDF5 file '%s': empty dataset name", f->path);
  hsize_t numel = 1;
  for (int k = 0; k < rank; k++) numel *= dims[k];
  if (numel && !data)
    return SCL_ERROR(SCL_ERR_ARG, "HDF5 file '%s', dataset '%s': NULL data", f->path, name);
  SCL_CHECK(gzip >= 0 && gzip <= 9, SCL_ERR_ARG,
            "HDF5 file '%s', dataset '%s': gzip level %d not in 0..9", f->path, name, gzip);
  scl_err err = SCL_OK;
  hid_t lcpl = -1, dcpl = H5P_DEFAULT, space = -1, dset = -1;
  if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
    err = H5_FAIL(f, name, "H5Pcreate(link create)");
    goto done;
  }
  if (gzip > 0 && (dcpl = h5_dcpl_gzip(rank, dims, H5Tget_size(file_type), gzip)) < 0) {
    err = H5_FAIL(f, name, "H5Pset_chunk/H5Pset_deflate");
    goto done;
  }
  if ((space = H5Screate_simple(rank, dims, NULL)) < 0) {
    err = H5_FAIL(f, name, "H5Screate_simple");
    goto done;
  }
  if ((dset = H5Dcreate2(f->id, name, file_type, space, lcpl, dcpl, H5P_DEFAULT)) < 0) {
    err = H5_FAIL(f, name, "H5Dcreate2");
    goto done;
  }
  if (numel && h5_write_whole(f, dset, mem_type, data) < 0) err = H5_FAIL(f, name, "H5Dwrite");
done:
  if (dset >= 0) H5Dclose(dset);
  if (space >= 0) H5Sclose(space);
  if (dcpl >= 0 && dcpl != H5P_DEFAULT) H5Pclose(dcpl);
  if (lcpl >= 0) H5Pclose(lcpl);
  SCL_CALL(h5_group_agree(f, err));
  uint64_t sum = h5_sum_shape(rank, dims);
  if (H5Tis_variable_str(mem_type) > 0)
    sum += h5_sum_strings(data, (int64_t)numel, 0);
  else if (H5Tget_class(mem_type) == H5T_STRING)
    sum += h5_sum_fixed_strings(data, (int64_t)numel, H5Tget_size(mem_type));
  else
    sum += h5_sum_elems(data, (int64_t)numel, H5Tget_size(mem_type), 0);
  SCL_CALL(h5_checksum_write(f, name, H5_SUM_ATTR, sum));
  return SCL_OK;
}

scl_err h5_write_f32_2d(h5_file *f, const char *name, const float *data, int64_t rows, int64_t cols,
                        int gzip_level) {
  hsize_t dims[2];
  const int64_t in[2] = {rows, cols};
  SCL_CALL(h5_dims_from(f, name, 2, in, dims));
  SCL_CALL(h5_write_dataset(f, name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, dims, data, gzip_level));
  return SCL_OK;
}

scl_err h5_write_f64_2d(h5_file *f, const char *name, const double *data, int64_t rows,
                        int64_t cols) {
  hsize_t dims[2];
  const int64_t in[2] = {rows, cols};
  SCL_CALL(h5_dims_from(f, name, 2, in, dims));
  SCL_CALL(h5_write_dataset(f, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 2, dims, data, 0));
  return SCL_OK;
}

scl_err h5_write_i32_1d(h5_file *f, const char *name, const int32_t *data, int64_t n) {
  hsize_t dims[1];
  SCL_CALL(h5_dims_from(f, name, 1, &n, dims));
  SCL_CALL(h5_write_dataset(f, name, H5T_NATIVE_INT32, H5T_STD_I32LE, 1, dims, data, 0));
  return SCL_OK;
}

scl_err h5_write_i64_1d(h5_file *f, const char *name, const int64_t *data, int64_t n) {
  hsize_t dims[1];
  SCL_CALL(h5_dims_from(f, name, 1, &n, dims));
  SCL_CALL(h5_write_dataset(f, name, H5T_NATIVE_INT64, H5T_STD_I64LE, 1, dims, data, 0));
  return SCL_OK;
}

scl_err h5_write_f64_1d(h5_file *f, const char *name, const double *data, int64_t n) {
  hsize_t dims[1];
  SCL_CALL(h5_dims_from(f, name, 1, &n, dims));
  SCL_CALL(h5_write_dataset(f, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 1, dims, data, 0));
  return SCL_OK;
}

/* Group files (parallel HDF5 1.10 cannot write variable-length data) and files made with
 * h5_file_fixed_strings store strings fixed-length (UTF-8, NUL-padded to the longest), which
 * h5_read_strings reads the same way. */
static scl_err h5_write_strings_fixed(h5_file *f, const char *name, const char *const *strs,
                                      int64_t n, const hsize_t *dims) {
  size_t width = 1, total;
  for (int64_t i = 0; i < n; i++) {
    size_t len = strlen(strs[i]);
    if (len > width) width = len;
  }
  char *buf = NULL;
  scl_err err = SCL_OK;
  if (scl_mul_overflows((size_t)n, width, &total))
    err = SCL_ERROR(SCL_ERR_ARG, "HDF5 file '%s', dataset '%s': strings too large", f->path, name);
  else
    err = scl_calloc(total ? total : 1, "fixed-length strings", (void **)&buf);
  SCL_CALL(h5_group_agree(f, err)); /* every rank must reach the collective write, or none */
  for (int64_t i = 0; i < n; i++) memcpy(buf + (size_t)i * width, strs[i], strlen(strs[i]));
  hid_t t = H5Tcopy(H5T_C_S1);
  if (t < 0 || H5Tset_size(t, width) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
      H5Tset_cset(t, H5T_CSET_UTF8) < 0)
    err = H5_FAIL(f, name, "H5Tcopy(fixed-length string type)");
  err = h5_group_agree(f, err);
  if (!err) err = h5_write_dataset(f, name, t, t, 1, dims, buf, 0);
  if (t >= 0) H5Tclose(t);
  scl_free(buf);
  SCL_CALL(err);
  return SCL_OK;
}

scl_err h5_write_strings(h5_file *f, const char *name, const char *const *strs, int64_t n) {
  hsize_t dims[1];
  SCL_CALL(h5_dims_from(f, name, 1, &n, dims));
  for (int64_t i = 0; i < n; i++)
    SCL_CHECK(strs[i], SCL_ERR_ARG, "HDF5 file '%s', dataset '%s': string %lld is NULL", f->path,
              name, (long long)i);
  if (h5_file_is_group(f) || f->fixed_strings) {
    SCL_CALL(h5_write_strings_fixed(f, name, strs, n, dims));
    return SCL_OK;
  }
  hid_t t = h5_vlen_utf8_type();
  if (t < 0) return H5_FAIL(f, name, "H5Tcopy(string type)");
  scl_err err = h5_write_dataset(f, name, t, t, 1, dims, strs, 0);
  H5Tclose(t);
  SCL_CALL(err);
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                   */

/* Opens dataset `name`, refusing a missing one with SCL_ERR_FORMAT (not an HDF5 failure: the
 * file is simply not what the caller expected). */
static scl_err h5_dataset_open(h5_file *f, const char *name, hid_t *dset) {
  *dset = -1;
  SCL_CHECK(f && name && name[0], SCL_ERR_ARG, "h5: NULL file or dataset name");
  int e = h5_link_exists(f->id, name);
  if (e < 0) return H5_FAIL(f, name, "H5Lexists");
  SCL_CHECK(e != 0, SCL_ERR_FORMAT, "HDF5 file '%s' has no dataset '%s'", f->path, name);
  if ((*dset = H5Dopen2(f->id, name, H5P_DEFAULT)) < 0) return H5_FAIL(f, name, "H5Dopen2");
  return SCL_OK;
}

static scl_err h5_dset_dims(h5_file *f, const char *name, hid_t dset, int *ndim,
                            hsize_t dims[H5_MAX_DIMS]) {
  hid_t space = H5Dget_space(dset);
  if (space < 0) return H5_FAIL(f, name, "H5Dget_space");
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd < 0) {
    scl_err err = H5_FAIL(f, name, "H5Sget_simple_extent_ndims");
    H5Sclose(space);
    return err;
  }
  if (nd > H5_MAX_DIMS) {
    H5Sclose(space);
    return SCL_ERROR(SCL_ERR_FORMAT, "HDF5 file '%s', dataset '%s': rank %d exceeds %d", f->path,
                     name, nd, H5_MAX_DIMS);
  }
  H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  *ndim = nd;
  return SCL_OK;
}

scl_err h5_dataset_shape(h5_file *f, const char *name, int *ndim, int64_t dims[H5_MAX_DIMS]) {
  hid_t dset;
  hsize_t d[H5_MAX_DIMS];
  SCL_CALL(h5_dataset_open(f, name, &dset));
  scl_err err = h5_dset_dims(f, name, dset, ndim, d);
  H5Dclose(dset);
  SCL_CALL(err);
  for (int k = 0; k < *ndim; k++) dims[k] = (int64_t)d[k];
  return SCL_OK;
}

/* Checks the checksum of the whole dataset just read into dst (numel elements of mem_type).
 * When the stored type has another size than mem_type (HDF5 converted the values), the
 * checksum is over the stored values, so they are read once more in their little-endian form. */
static scl_err h5_read_verify(h5_file *f, const char *name, hid_t dset, hid_t mem_type, int nd,
                              const hsize_t *dims, const void *dst, int64_t numel) {
  hid_t ftype = H5Dget_type(dset), mt = -1;
  if (ftype < 0) return H5_FAIL(f, name, "H5Dget_type");
  size_t fsize = H5Tget_size(ftype), msize = H5Tget_size(mem_type);
  scl_err err = SCL_OK;
  void *raw = NULL;
  uint64_t sum = h5_sum_shape(nd, dims);
  if (fsize == msize) {
    sum += h5_sum_elems(dst, numel, msize, 0);
  } else if ((mt = H5Tcopy(ftype)) < 0 || H5Tset_order(mt, H5T_ORDER_LE) < 0) {
    err = H5_FAIL(f, name, "H5Tcopy (checksum type)");
  } else if (!(err =
                   scl_alloc((size_t)numel * fsize + 1, "stored values for the checksum", &raw)) &&
             numel && H5Dread(dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
    err = H5_FAIL(f, name, "H5Dread (stored values)");
  } else if (!err) {
    sum += h5_sum_elems(raw, numel, fsize, 0);
  }
  scl_free(raw);
  if (mt >= 0) H5Tclose(mt);
  H5Tclose(ftype);
  SCL_CALL(err);
  SCL_CALL(h5_checksum_check(f, name, dset, sum));
  return SCL_OK;
}

/* Checks rank, dimensions and type class, then reads the whole dataset into dst. */
static scl_err h5_read_dataset(h5_file *f, const char *name, hid_t mem_type, H5T_class_t cls,
                               int rank, const int64_t *want, void *dst) {
  hid_t dset;
  SCL_CALL(h5_dataset_open(f, name, &dset));
  scl_err err = SCL_OK;
  int nd = 0;
  hsize_t dims[H5_MAX_DIMS] = {0}, exp[H5_MAX_DIMS] = {0};
  SCL_CALL_GOTO(err, h5_dset_dims(f, name, dset, &nd, dims), done);
  SCL_CALL_GOTO(err, h5_dims_from(f, name, rank, want, exp), done);
  int same = nd == rank;
  hsize_t numel = 1;
  for (int k = 0; same && k < rank; k++) {
    same = dims[k] == exp[k];
    numel *= exp[k];
  }
  if (!same) {
    char have[160], need[160];
    h5_shape_str(have, sizeof have, nd, dims);
    h5_shape_str(need, sizeof need, rank, exp);
    SCL_ERROR_GOTO(err, done, SCL_ERR_FORMAT, "HDF5 file '%s', dataset '%s': shape %s, expected %s",
                   f->path, name, have, need);
  }
  hid_t ftype = H5Dget_type(dset);
  if (ftype < 0) {
    err = H5_FAIL(f, name, "H5Dget_type");
    goto done;
  }
  H5T_class_t have_cls = H5Tget_class(ftype);
  H5Tclose(ftype);
  SCL_CHECK_GOTO(err, done, have_cls == cls, SCL_ERR_FORMAT,
                 "HDF5 file '%s', dataset '%s': stored as %s, expected %s", f->path, name,
                 have_cls == H5T_INTEGER  ? "integers"
                 : have_cls == H5T_FLOAT  ? "floating point"
                 : have_cls == H5T_STRING ? "strings"
                                          : "another type",
                 cls == H5T_INTEGER ? "integers" : "floating point");
  if (numel && H5Dread(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
    err = H5_FAIL(f, name, "H5Dread");
    goto done;
  }
  SCL_CALL_GOTO(err, h5_read_verify(f, name, dset, mem_type, nd, dims, dst, (int64_t)numel), done);
done:
  H5Dclose(dset);
  return err;
}

scl_err h5_read_f32_2d(h5_file *f, const char *name, float *dst, int64_t rows, int64_t cols) {
  const int64_t want[2] = {rows, cols};
  SCL_CALL(h5_read_dataset(f, name, H5T_NATIVE_FLOAT, H5T_FLOAT, 2, want, dst));
  return SCL_OK;
}

scl_err h5_read_f64_2d(h5_file *f, const char *name, double *dst, int64_t rows, int64_t cols) {
  const int64_t want[2] = {rows, cols};
  SCL_CALL(h5_read_dataset(f, name, H5T_NATIVE_DOUBLE, H5T_FLOAT, 2, want, dst));
  return SCL_OK;
}

scl_err h5_read_i32_1d(h5_file *f, const char *name, int32_t *dst, int64_t n) {
  SCL_CALL(h5_read_dataset(f, name, H5T_NATIVE_INT32, H5T_INTEGER, 1, &n, dst));
  return SCL_OK;
}

scl_err h5_read_i64_1d(h5_file *f, const char *name, int64_t *dst, int64_t n) {
  SCL_CALL(h5_read_dataset(f, name, H5T_NATIVE_INT64, H5T_INTEGER, 1, &n, dst));
  return SCL_OK;
}

scl_err h5_read_f64_1d(h5_file *f, const char *name, double *dst, int64_t n) {
  SCL_CALL(h5_read_dataset(f, name, H5T_NATIVE_DOUBLE, H5T_FLOAT, 1, &n, dst));
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Strings                                                                                   */

void h5_strings_free(char **strs, int64_t n) {
  if (!strs) return;
  for (int64_t i = 0; i < n; i++) free(strs[i]);
  free(strs);
}

static scl_err h5_read_vlen_strings(h5_file *f, const char *name, hid_t dset, hid_t ftype,
                                    int64_t n, char **out) {
  char **raw = calloc((size_t)n, sizeof *raw);
  SCL_CHECK(raw, SCL_ERR_NOMEM, "HDF5 string pointers of '%s'", name);
  scl_err err = SCL_OK;
  hid_t mt = h5_vlen_utf8_type(), space = -1;
  if (mt < 0 || H5Tset_cset(mt, H5Tget_cset(ftype)) < 0) {
    err = H5_FAIL(f, name, "H5Tcopy(string type)");
  } else if ((space = H5Dget_space(dset)) < 0) {
    err = H5_FAIL(f, name, "H5Dget_space");
  } else if (H5Dread(dset, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0) {
    err = H5_FAIL(f, name, "H5Dread");
  } else {
    for (int64_t i = 0; i < n && !err; i++) err = h5_str_dup(raw[i], (size_t)-1, 0, &out[i]);
    H5_VLEN_RECLAIM(mt, space, raw);
  }
  if (space >= 0) H5Sclose(space);
  if (mt >= 0) H5Tclose(mt);
  free(raw);
  return err;
}

static scl_err h5_read_fixed_strings(h5_file *f, const char *name, hid_t dset, hid_t ftype,
                                     int64_t n, char **out) {
  size_t size = H5Tget_size(ftype), total;
  SCL_CHECK(size != 0 && !scl_mul_overflows((size_t)n, size, &total), SCL_ERR_FORMAT,
            "HDF5 file '%s', dataset '%s': bad string size %zu", f->path, name, size);
  char *buf = NULL;
  SCL_CALL(scl_alloc(total, "HDF5 fixed-length strings", (void **)&buf));
  scl_err err = SCL_OK;
  if (H5Dread(dset, ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
    err = H5_FAIL(f, name, "H5Dread");
  } else {
    int spacepad = H5Tget_strpad(ftype) == H5T_STR_SPACEPAD;
    for (int64_t i = 0; i < n && !err; i++)
      err = h5_str_dup(buf + (size_t)i * size, size, spacepad, &out[i]);
  }
  scl_free(buf);
  return err;
}

scl_err h5_read_strings(h5_file *f, const char *name, char ***strs, int64_t *n) {
  *strs = NULL;
  *n = 0;
  hid_t dset, ftype = -1;
  SCL_CALL(h5_dataset_open(f, name, &dset));
  scl_err err = SCL_OK;
  char **out = NULL;
  int nd = 0;
  hsize_t dims[H5_MAX_DIMS];
  SCL_CALL_GOTO(err, h5_dset_dims(f, name, dset, &nd, dims), done);
  if ((ftype = H5Dget_type(dset)) < 0) {
    err = H5_FAIL(f, name, "H5Dget_type");
    goto done;
  }
  SCL_CHECK_GOTO(err, done, nd == 1 && H5Tget_class(ftype) == H5T_STRING, SCL_ERR_FORMAT,
                 "HDF5 file '%s', dataset '%s': not a 1-D array of strings", f->path, name);
  int64_t count = (int64_t)dims[0];
  out = calloc((size_t)(count ? count : 1), sizeof *out);
  SCL_CHECK_GOTO(err, done, out, SCL_ERR_NOMEM, "HDF5 strings of '%s'", name);
  if (count && H5Tis_variable_str(ftype) > 0)
    err = h5_read_vlen_strings(f, name, dset, ftype, count, out);
  else if (count)
    err = h5_read_fixed_strings(f, name, dset, ftype, count, out);
  if (err) {
    SCL_TRACE(err);
    h5_strings_free(out, count);
    goto done;
  }
  uint64_t sum = h5_sum_shape(nd, dims) + h5_sum_strings((const char *const *)out, count, 0);
  err = h5_checksum_check(f, name, dset, sum);
  if (err) {
    SCL_TRACE(err);
    h5_strings_free(out, count);
    goto done;
  }
  *strs = out;
  *n = count;
done:
  if (ftype >= 0) H5Tclose(ftype);
  H5Dclose(dset);
  return err;
}
