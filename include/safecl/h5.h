/* h5.h: thin HDF5 wrappers, so that no other module calls raw HDF5 for ordinary things.
 *
 * Every function returns an scl_err. A failing HDF5 call becomes SCL_ERR_HDF5 with a message
 * naming the file, the object and the innermost description from HDF5's error stack; shape or
 * type mismatches on read are SCL_ERR_FORMAT. HDF5's own automatic error printing is switched
 * off the first time any h5_ function runs.
 *
 * Objects are named by paths inside the file ("features", "meta/classes"); for attributes the
 * object NULL, "" or "/" means the root group. Datasets are written whole, in one call, row-major.
 * Strings are stored as variable-length UTF-8 (what h5py writes for `str`); readers also accept
 * fixed-length strings.
 *
 * Files: h5_file_create_atomic writes a serial file under a temporary name beside `path` and
 * h5_file_commit publishes it with write-then-rename (publish.h), so a process that dies before
 * commit leaves any existing file at `path` intact. None of these functions is collective. A
 * parallel (MPI-IO) variant, h5_file_create_parallel(comm, path, &f), will be added beside
 * h5_file_create_atomic and return the same h5_file type. */
#ifndef SAFECL_H5_H
#define SAFECL_H5_H

#include <stdint.h>

#include "safecl/core.h"

#define H5_MAX_DIMS 8

typedef struct h5_file h5_file;

/* ---------------------------------------------------------------------------------------- */
/* Files                                                                                     */

/* Creates `path`.tmp.<pid> for writing; nothing appears at `path` before h5_file_commit.
 * *out is owned by the caller and released by h5_file_commit or h5_file_abort. */
SCL_NODISCARD scl_err h5_file_create_atomic(const char *path, h5_file **out);
/* Closes the file (flushing it) and publishes it at its path. Releases *f and sets it to NULL,
 * also on failure (then the temporary file is removed and the destination left untouched).
 * On a file opened for reading it is the same as h5_file_close. */
SCL_NODISCARD scl_err h5_file_commit(h5_file **f);
/* Closes and discards an uncommitted file; the destination is left untouched. Accepts NULL and
 * *f == NULL; sets *f to NULL. On a file opened for reading it just closes it. */
void h5_file_abort(h5_file **f);
/* Opens an existing file read-only. *out is owned by the caller: release with h5_file_close. */
SCL_NODISCARD scl_err h5_file_open_read(const char *path, h5_file **out);
/* Closes a file opened for reading. Accepts NULL and *f == NULL; sets *f to NULL. On a file
 * being created it aborts it and returns SCL_ERR_ARG: publishing needs an explicit commit. */
SCL_NODISCARD scl_err h5_file_close(h5_file **f);
/* The destination path given at open/create; owned by f. */
const char *h5_file_path(const h5_file *f);
/* The raw hid_t, for the rare caller that needs HDF5 directly (prefer adding a wrapper here). */
int64_t h5_file_hid(const h5_file *f);

/* ---------------------------------------------------------------------------------------- */
/* Groups and existence                                                                      */

/* Creates group `name`, with any missing intermediate groups; an existing group is fine. */
SCL_NODISCARD scl_err h5_group_create(h5_file *f, const char *name);
/* *exists = 1 if a link `name` (group or dataset; every intermediate group too) exists. */
SCL_NODISCARD scl_err h5_exists(h5_file *f, const char *name, int *exists);

/* ---------------------------------------------------------------------------------------- */
/* Writing datasets (missing intermediate groups are created)                                */

/* A rows x cols float32 matrix. gzip_level 0 stores it contiguous and uncompressed (fastest);
 * 1..9 stores it in chunks of whole rows with deflate. */
SCL_NODISCARD scl_err h5_write_f32_2d(h5_file *f, const char *name, const float *data, int64_t rows,
                                      int64_t cols, int gzip_level);
/* A rows x cols float64 matrix, contiguous (metrics, accuracy matrices). */
SCL_NODISCARD scl_err h5_write_f64_2d(h5_file *f, const char *name, const double *data,
                                      int64_t rows, int64_t cols);
SCL_NODISCARD scl_err h5_write_i32_1d(h5_file *f, const char *name, const int32_t *data, int64_t n);
SCL_NODISCARD scl_err h5_write_i64_1d(h5_file *f, const char *name, const int64_t *data, int64_t n);
SCL_NODISCARD scl_err h5_write_f64_1d(h5_file *f, const char *name, const double *data, int64_t n);
/* n variable-length UTF-8 strings; none may be NULL. */
SCL_NODISCARD scl_err h5_write_strings(h5_file *f, const char *name, const char *const *strs,
                                       int64_t n);

/* ---------------------------------------------------------------------------------------- */
/* Reading datasets                                                                          */

/* The rank and dimensions of dataset `name`. */
SCL_NODISCARD scl_err h5_dataset_shape(h5_file *f, const char *name, int *ndim,
                                       int64_t dims[H5_MAX_DIMS]);
/* Read a whole dataset into dst, which holds exactly the expected shape; a dataset of another
 * shape or of a non-numeric type is SCL_ERR_FORMAT naming both shapes. Values are converted
 * from the stored numeric type by HDF5 (e.g. a float64 dataset reads into float32). */
SCL_NODISCARD scl_err h5_read_f32_2d(h5_file *f, const char *name, float *dst, int64_t rows,
                                     int64_t cols);
SCL_NODISCARD scl_err h5_read_f64_2d(h5_file *f, const char *name, double *dst, int64_t rows,
                                     int64_t cols);
SCL_NODISCARD scl_err h5_read_i32_1d(h5_file *f, const char *name, int32_t *dst, int64_t n);
SCL_NODISCARD scl_err h5_read_i64_1d(h5_file *f, const char *name, int64_t *dst, int64_t n);
SCL_NODISCARD scl_err h5_read_f64_1d(h5_file *f, const char *name, double *dst, int64_t n);
/* Reads a 1-D string dataset. *strs is an array of *n strings, owned by the caller: release
 * it with h5_strings_free(strs, n). */
SCL_NODISCARD scl_err h5_read_strings(h5_file *f, const char *name, char ***strs, int64_t *n);
void h5_strings_free(char **strs, int64_t n);

/* ---------------------------------------------------------------------------------------- */
/* Byte blobs readable without HDF5 (h5_blob.c)                                              */

/* A contiguous uint8 dataset of nbytes, allocated now, so that its bytes have a fixed offset in
 * the file. Write it in pieces with h5_blob_write. */
SCL_NODISCARD scl_err h5_blob_create(h5_file *f, const char *name, int64_t nbytes);
SCL_NODISCARD scl_err h5_blob_write(h5_file *f, const char *name, int64_t offset, const void *data,
                                    int64_t len);
/* Where the blob's bytes are in the file, for mmap/pread by readers that bypass HDF5. */
SCL_NODISCARD scl_err h5_blob_locate(h5_file *f, const char *name, int64_t *file_offset,
                                     int64_t *nbytes);

/* ---------------------------------------------------------------------------------------- */
/* Attributes: `obj` is a group or dataset path; NULL, "" or "/" is the root. Writing replaces
 * an existing attribute of the same name.                                                   */

SCL_NODISCARD scl_err h5_attr_write_str(h5_file *f, const char *obj, const char *key,
                                        const char *value);
SCL_NODISCARD scl_err h5_attr_write_i64(h5_file *f, const char *obj, const char *key,
                                        int64_t value);
SCL_NODISCARD scl_err h5_attr_write_f64(h5_file *f, const char *obj, const char *key, double value);
SCL_NODISCARD scl_err h5_attr_exists(h5_file *f, const char *obj, const char *key, int *exists);
/* *value is allocated here and owned by the caller: release it with scl_free. */
SCL_NODISCARD scl_err h5_attr_read_str(h5_file *f, const char *obj, const char *key, char **value);
/* Integer attributes of any integer type; a non-integer attribute is SCL_ERR_FORMAT. */
SCL_NODISCARD scl_err h5_attr_read_i64(h5_file *f, const char *obj, const char *key,
                                       int64_t *value);
/* Any numeric attribute, converted to double. */
SCL_NODISCARD scl_err h5_attr_read_f64(h5_file *f, const char *obj, const char *key, double *value);

/* ---------------------------------------------------------------------------------------- */
/* Provenance and schema (STYLE.md 17)                                                       */

/* Writes the standard root attributes every safecl HDF5 file carries: schema_version,
 * code_version, hdf5_version, mpi_library_version, openblas_config, hostname, created_utc
 * (ISO 8601) and threads (OpenBLAS threads). Works whether or not MPI is initialised. */
SCL_NODISCARD scl_err h5_write_provenance(h5_file *f, int64_t schema_version);
/* Checks the root attribute schema_version == expected_version. `what` names the kind of file
 * in the message ("trial results"). A missing attribute is "not a safecl file"; a newer version
 * asks to upgrade safecl; an older one asks to regenerate the file. Errors are SCL_ERR_FORMAT. */
SCL_NODISCARD scl_err h5_check_schema(h5_file *f, int64_t expected_version, const char *what);

#endif /* SAFECL_H5_H */
