/* h5.h: thin HDF5 wrappers, so that no other module calls raw HDF5 for ordinary things.
 *
 * Every function returns an scl_err. A failing HDF5 call becomes SCL_ERR_HDF5 with a message
 * naming the file, the object and the innermost description from HDF5's error stack; shape or
 * type mismatches on read are SCL_ERR_FORMAT. HDF5's own automatic error printing is switched
 * off the first time any h5_ function runs.
 *
 * Objects are named by paths inside the file ("features", "meta/classes"); for attributes the
 * object NULL, "" or "/" means the root group. Datasets are written whole, in one call, row-major.
 * Strings are stored as variable-length UTF-8 (what h5py writes for `str`), or fixed-length in
 * files made with h5_file_fixed_strings; readers accept both.
 *
 * Files: h5_file_create_atomic writes a serial file under a temporary name beside `path` and
 * h5_file_commit publishes it with write-then-rename (publish.h), so a process that dies before
 * commit leaves any existing file at `path` intact. Until commit or abort a serial file also holds
 * 128 KiB or more of its disk in `path`.tmp.<pid>.reserve, which it gives back for the flush at
 * commit, so that a full disk fails a write, not the close (h5_file.c). h5_file_create_atomic_group (the "Group
 * files" section at the end) makes the same kind of file written collectively by the ranks of a
 * group with parallel HDF5; on such a file the writing wrappers below are collective. Reading is
 * never collective.
 *
 * Checksums (h5_checksum.c; docs/architecture.md, failure model): every dataset written here
 * carries an XXH3-64 checksum of its elements (attribute "xxh3_64"), and commit adds one over
 * every attribute of the file (root attribute "attrs_xxh3_64"). h5_file_open_read checks the
 * attributes; every h5_read_* checks the dataset it reads, except a block-cyclic read of a piece
 * (only the whole matrix is checked there: see h5_file_verify). A mismatch is SCL_ERR_FORMAT
 * naming the file, the dataset and "checksum mismatch". Files written without checksums (before
 * them, or by other tools) are read unverified. Before any of that, h5_file_open_read checks the
 * whole-file checksum that commit writes into the file's 512-byte user block (h5_whole.c), with
 * plain reads and before HDF5 parses the file: a mismatch is SCL_ERR_FORMAT naming the file and
 * "whole-file checksum mismatch: damaged". */
#ifndef SAFECL_H5_H
#define SAFECL_H5_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/dist.h"

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
/* On commit, a file already at the destination is first renamed to prev_path (replacing what
 * was there), so the previous version survives next to the new one. Call before commit on a
 * file being created; on a group file every rank calls it with the same path. */
SCL_NODISCARD scl_err h5_file_keep_previous(h5_file *f, const char *prev_path);
/* Stores this file's string attributes and string datasets fixed-length (NUL-padded UTF-8)
 * instead of variable-length, so that the file has no HDF5 global heap: HDF5 1.10 trusts the
 * object sizes of a global heap, and a damaged one can crash its reader before any checksum is
 * checked. h5py reads such strings as bytes. Call right after creating the file. */
SCL_NODISCARD scl_err h5_file_fixed_strings(h5_file *f);
/* 1 if a file opened for reading carries the attribute checksum (checked at open). */
int h5_file_checksummed(const h5_file *f);
/* 1 if a file opened for reading carried the whole-file checksum and its bytes matched it at
 * open: they are the bytes sealed at commit, so h5_file_verify would read them again for
 * nothing (every h5_read_* still checks the dataset it reads). */
int h5_file_sealed(const h5_file *f);
/* Checks every dataset's checksum of a file opened for reading, each of the ranks of `readers`
 * reading an equal share of every dataset's rows and the partial sums added up over them (NULL:
 * this process reads everything). Collective over readers: the same status on every rank, a
 * mismatch SCL_ERR_FORMAT naming the first damaged dataset. Datasets without a checksum pass. */
SCL_NODISCARD scl_err h5_file_verify(h5_file *f, const dist_comm *readers);
/* The destination path given at open/create; owned by f. */
const char *h5_file_path(const h5_file *f);

/* ---------------------------------------------------------------------------------------- */
/* Groups and existence                                                                      */

/* Creates group `name`, with any missing intermediate groups; an existing group is fine. */
SCL_NODISCARD scl_err h5_group_create(h5_file *f, const char *name);
/* *exists = 1 if a link `name` (group or dataset; every intermediate group too) exists. */
SCL_NODISCARD scl_err h5_exists(h5_file *f, const char *name, int *exists);
/* The names of the links of group `group` (NULL or "" the root), in name order: *names holds *n
 * strings owned by the caller (release with h5_strings_free(*names, *n)). A group of more than
 * `max` links is SCL_ERR_FORMAT (a bound on what a damaged file can make the reader allocate). */
SCL_NODISCARD scl_err h5_list_links(h5_file *f, const char *group, int64_t max, char ***names,
                                    int64_t *n);

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
 * the file. Write it in pieces with h5_blob_write, in any order; its checksum is taken from the
 * file at commit. */
SCL_NODISCARD scl_err h5_blob_create(h5_file *f, const char *name, int64_t nbytes);
SCL_NODISCARD scl_err h5_blob_write(h5_file *f, const char *name, int64_t offset, const void *data,
                                    int64_t len);
/* Where the blob's bytes are in the file, for mmap/pread by readers that bypass HDF5. Commit
 * stores the blob's checksum (xxh3_64_blocks, h5_blob.c), and this reads the whole blob once to
 * check it: a mismatch is SCL_ERR_FORMAT "checksum mismatch" naming the file and the blob. A
 * blob without a checksum (written before them) is not checked. */
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
/* *value is allocated here and owned by the caller: release it with free(). */
SCL_NODISCARD scl_err h5_attr_read_str(h5_file *f, const char *obj, const char *key, char **value);
/* Integer attributes of any integer type; a non-integer attribute is SCL_ERR_FORMAT. */
SCL_NODISCARD scl_err h5_attr_read_i64(h5_file *f, const char *obj, const char *key,
                                       int64_t *value);
/* Any numeric attribute, converted to double. */
SCL_NODISCARD scl_err h5_attr_read_f64(h5_file *f, const char *obj, const char *key, double *value);

/* ---------------------------------------------------------------------------------------- */
/* Provenance and schema (docs/conventions.md 17)                                            */

/* Writes the standard root attributes every safecl HDF5 file carries: schema_version,
 * code_version, hdf5_version, mpi_library_version, openblas_config, hostname, created_utc
 * (ISO 8601) and threads (OpenBLAS threads). Works whether or not MPI is initialised. */
SCL_NODISCARD scl_err h5_write_provenance(h5_file *f, int64_t schema_version);
/* Checks the root attribute schema_version == expected_version. `what` names the kind of file
 * in the message ("trial results"). A missing attribute is "not a safecl file"; a newer version
 * asks to upgrade safecl; an older one asks to regenerate the file. Errors are SCL_ERR_FORMAT. */
SCL_NODISCARD scl_err h5_check_schema(h5_file *f, int64_t expected_version, const char *what);
/* The same for a reader of every version from oldest to newest (a newer one asks to upgrade, an
 * older one to regenerate the file). */
SCL_NODISCARD scl_err h5_check_schema_range(h5_file *f, int64_t oldest, int64_t newest,
                                            const char *what);

/* ======================================================================================== */
/* Group files: one HDF5 file written collectively by the G ranks of a trial's group with
 * parallel HDF5 (MPI-IO), published like h5_file_create_atomic's files (h5_group.c), and
 * block-cyclic (ScaLAPACK) matrices stored as plain m x n datasets (h5_cyclic.c). The group is a
 * dist_comm (dist.h): io talks to MPI only through dist.
 *
 * The collective rules. "Collective" means every rank of the group calls the function, in the
 * same order, with the same arguments unless an argument is said to be per-rank.
 *  - h5_file_create_atomic_group, h5_file_commit, h5_file_commit_group and h5_file_abort (and
 *    h5_file_close, which aborts a file being created) are collective on a group file.
 *  - On a group file every writing wrapper above (h5_group_create, h5_write_*, h5_attr_write_*,
 *    h5_write_provenance) is collective: call it on every rank with the same arguments.
 *    Dataset data is written once, from rank 0's buffer; attribute values are taken from
 *    rank 0, so per-rank values (hostname, time) cannot disagree.
 *  - Each of these returns the same status on every rank (docs/conventions.md 3): the rank that
 *    failed returns its own error, the others the same code naming that rank. So a caller may stop
 *    at the first error and still be in lockstep: every rank stops at the same call.
 *  - A rank that fails between the wrappers (in its own code) carries its status to
 *    h5_file_commit_group(&f, status), or calls h5_file_abort(&f) while the others commit:
 *    nothing is published, the temporary is removed, every rank returns an error.
 *  - h5_write_strings on a group file stores fixed-length UTF-8 strings (NUL-padded to the
 *    longest; parallel HDF5 1.10 cannot write variable-length data). h5_read_strings reads both
 *    kinds; h5py returns fixed-length strings as bytes.
 *  - h5_blob_* is serial only. Reading (h5_read_*, h5_attr_read_*, h5_read_f64_cyclic) is never
 *    collective: open the published file with h5_file_open_read on any number of ranks. */

#include "safecl/dist.h"

/* Creates `path`'s temporary sibling (`path`.tmp.<pid of rank 0>) with the MPI-IO driver on a
 * duplicate of comm (an MPI communicator, not dist_comm_self()); collective over comm, the same
 * status on every rank. *out is owned by the
 * caller and released by h5_file_commit, h5_file_commit_group or h5_file_abort (collective). */
SCL_NODISCARD scl_err h5_file_create_atomic_group(const char *path, const dist_comm *comm,
                                                  h5_file **out);
/* Publishes the file if every rank's `local` status is SCL_OK and the collective close and the
 * rename succeed; otherwise removes the temporary and leaves `path` as it was. Collective on a
 * group file: every rank returns the same code (a failing rank its own error, the others the
 * code with a message naming that rank). h5_file_commit(&f) is h5_file_commit_group(&f, SCL_OK);
 * h5_file_abort(&f) on one rank takes part in the same collective steps and makes the ranks
 * that commit fail. On a serial file: commit if local is OK, else abort and return local.
 * Releases *f and sets it to NULL in every case. */
SCL_NODISCARD scl_err h5_file_commit_group(h5_file **f, scl_err local);

/* A block-cyclic matrix (ScaLAPACK's descriptor with source process (0, 0)): m x n global, mb x
 * nb blocks over an nprow x npcol process grid; this rank is (myrow, mycol) and, if `holds`,
 * keeps its piece column-major: local element (il, jl) at local[il + jl * lld], lld >= the local
 * row count (numroc(m, mb, myrow, 0, nprow)). holds = 0: the rank has no piece (outside the
 * grid); local may be NULL.
 *
 * Writes dataset `name` (float64, contiguous, m x n row-major: element (i, j) at [i][j]).
 * Collective on a group file: every rank calls it with the same m, n, mb, nb, nprow, npcol
 * and its own myrow, mycol, holds, local, lld; every grid position must be held by exactly one
 * rank (checked: the same status on every rank). On a serial file the grid must be 1 x 1 and
 * held (the whole matrix, any mb, nb). Needs a scratch copy of the local piece. */
SCL_NODISCARD scl_err h5_write_f64_cyclic(h5_file *f, const char *name, int64_t m, int64_t n,
                                          int64_t mb, int64_t nb, int nprow, int npcol, int myrow,
                                          int mycol, int holds, const double *local, int64_t lld);
/* Reads this rank's piece of the m x n dataset `name` for the layout given, whatever layout
 * wrote it. Not collective (any file, any rank, any grid position); holds = 0 reads nothing.
 * The checksum is checked when the piece is the whole matrix (a 1 x 1 grid); a piece of a
 * larger grid cannot be checked alone: h5_file_verify checks it with the other readers.
 * A dataset of another shape is SCL_ERR_FORMAT naming both. */
SCL_NODISCARD scl_err h5_read_f64_cyclic(h5_file *f, const char *name, int64_t m, int64_t n,
                                         int64_t mb, int64_t nb, int nprow, int npcol, int myrow,
                                         int mycol, int holds, double *local, int64_t lld);
/* The local row (or column) count of a block-cyclic dimension: ScaLAPACK's numroc with source
 * process 0 (extent n, block nb, this process iproc of nprocs). */
int64_t h5_cyclic_numroc(int64_t n, int64_t nb, int iproc, int nprocs);

#endif /* SAFECL_H5_H */
