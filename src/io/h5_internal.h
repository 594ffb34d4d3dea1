/* h5_internal.h: what the h5_*.c files share and nobody else sees: the file struct, the HDF5
 * error translation and object lookup. Not installed; include only from src/io/h5_*.c. */
#ifndef SAFECL_H5_INTERNAL_H
#define SAFECL_H5_INTERNAL_H

#include <hdf5.h>

#include "safecl/dist.h"
#include "safecl/h5.h"

/* Releases what HDF5 allocated while reading variable-length data. H5Treclaim replaced
 * H5Dvlen_reclaim in 1.12; 1.10's headers declare it but its library does not export it. */
#if H5_VERSION_GE(1, 12, 0)
#define H5_VLEN_RECLAIM(type, space, buf) H5Treclaim((type), (space), H5P_DEFAULT, (buf))
#else
#define H5_VLEN_RECLAIM(type, space, buf) H5Dvlen_reclaim((type), (space), H5P_DEFAULT, (buf))
#endif

struct h5_file {
  hid_t id;
  char *path;     /* destination, as given */
  char *tmp_path; /* the file HDF5 writes while an atomic create is uncommitted, else NULL */
  int writable;
  dist_comm *comm;    /* group files (h5_group.c): our duplicate of the group; else NULL */
  int rank;           /* rank in comm; 0 for serial files */
  int checksummed;    /* read: the root carries the attribute checksum (verified at open) */
  int sealed;         /* read: the whole-file checksum was there and matched at open */
  char *prev_path;    /* h5_file_keep_previous: where commit moves the file it replaces; or NULL */
  int fixed_strings;  /* h5_file_fixed_strings: string attributes and datasets fixed-length */
  char *reserve_path; /* serial create: H5_CLOSE_RESERVE bytes held beside tmp_path, or NULL */
  char **blobs;       /* h5_blob_create: the blobs of this file, summed at commit (h5_blob.c) */
  int n_blobs;
};

/* The room a serial file being created holds on its disk (a sibling file of this many bytes,
 * grown at commit to the metadata HDF5 caches plus its sieve buffer) while its datasets are
 * written, and gives back right before the flush at commit, so that the flush, which writes
 * what HDF5 buffered, finds room: HDF5 1.10 cannot close a file whose flush failed without
 * leaving its id registered over freed state, which its cleanup at MPI_Finalize then
 * dereferences (h5_file.c). */
#define H5_CLOSE_RESERVE (128 * 1024)
#define H5_SIEVE_BYTES (64 * 1024) /* HDF5's default sieve buffer (H5Pset_sieve_buf_size) */

/* The whole-file checksum (h5_whole.c): the user block every published file is created with,
 * its record written at commit and checked at open before HDF5 reads the file. */
#define H5_WHOLE_BLOCK 512
/* A file creation list with the user block; <0 on failure. */
hid_t h5_whole_fcpl(void);
/* Writes the record into the closed file tmp_path (published later as path): its length and the
 * XXH3-64 of its bytes after the user block. The publishing rename's fsync makes it durable. */
scl_err h5_whole_seal(const char *tmp_path, const char *path);
/* Refuses (SCL_ERR_FORMAT, "whole-file checksum mismatch: damaged") a file whose record does not
 * match its bytes; a file without the record, or one that cannot be opened, passes unread.
 * *sealed = 1 when the record was there and matched. */
scl_err h5_whole_check(const char *path, int *sealed);

/* Allocates a handle for `path` (id -1, serial: comm NULL); h5_file_free releases it
 * (not the HDF5 file or the communicator). */
scl_err h5_file_alloc(const char *path, h5_file **out);
void h5_file_free(h5_file *f);
/* Moves the file being replaced to f->prev_path if set (h5_file_keep_previous); rank 0 of a
 * group file, or the serial writer, calls it right before publishing. */
scl_err h5_keep_previous_now(const h5_file *f);
/* The file access list every file uses (strong close, locking where supported); <0 on failure. */
hid_t h5_fapl(void);

/* ---------------------------------------------------------------------------------------- */
/* Group files (h5_group.c). Every wrapper that writes calls these; on a serial file they are
 * the plain serial operation, so the serial path does not change.                          */

/* 1 if f was made by h5_file_create_atomic_group. */
int h5_file_is_group(const h5_file *f);
/* The collective verdict on `local` after a collective step (identity on a serial file): OK on
 * every rank or the same error code on every rank (docs/conventions.md 3). */
scl_err h5_group_agree(const h5_file *f, scl_err local);
/* Writes a whole dataset from `data`, which every rank holds identically: serial files write
 * it; group files write rank 0's copy in one collective transfer. <0 on an HDF5 failure. */
herr_t h5_write_whole(const h5_file *f, hid_t dset, hid_t mem_type, const void *data);
/* The data transfer list for dataset writes: collective MPI-IO on group files, H5P_DEFAULT
 * otherwise; close with h5_dxpl_close. <0 on failure. */
hid_t h5_dxpl_write(const h5_file *f);
void h5_dxpl_close(hid_t dxpl);
/* Group files: replaces *value (bytes, len equal on every rank) by rank 0's copy, so that an
 * attribute written by every rank has one value (hostname, time); a no-op on serial files. */
scl_err h5_group_bcast(const h5_file *f, void *value, size_t len, const char *what);
/* Group files: *value becomes rank 0's string, in a buffer owned by the caller (*owned, freed
 * with free(); NULL when *value was left as it was, which is always so on serial files). */
scl_err h5_group_bcast_str(const h5_file *f, const char **value, char **owned, const char *what);
/* The number of ranks writing f: the group's size, 1 for a serial file. */
int h5_group_size(const h5_file *f);
/* In-place allreduce of n int64 over the group (sum if `sum`, else max); a no-op on serial files.
 * Collective; the status is this rank's (combine with h5_group_agree). */
scl_err h5_group_reduce_i64(const h5_file *f, int64_t *v, int n, int sum);
/* The collective ends of a group file: commit (publish = 1) or abort. */
scl_err h5_group_finish(h5_file **pf, scl_err local, int publish);

/* Turns off HDF5's automatic error printing (once; idempotent). Every public h5_ entry point
 * that may be the first HDF5 use calls it. */
void h5_quiet(void);

/* Raises SCL_ERR_HDF5 for a failed HDF5 call `call` on object `obj` (NULL: the file itself),
 * appending the innermost description from HDF5's error stack. Must run right after the
 * failing call, before any other HDF5 call clears the stack. */
scl_err h5_fail_at(const h5_file *f, const char *obj, const char *call, const char *file, int line,
                   const char *func);
#define H5_FAIL(f, obj, call) h5_fail_at((f), (obj), (call), __FILE__, __LINE__, __func__)

/* "/" for NULL or "", else obj: how objects are named in messages and HDF5 calls. */
const char *h5_obj_name(const char *obj);

/* 1 if every link along `path` exists, 0 if one is missing, <0 on an HDF5 failure. */
int h5_link_exists(hid_t loc, const char *path);

/* Raises SCL_ERR_ARG unless f was created for writing. */
scl_err h5_require_writable(const h5_file *f, const char *obj);

/* Copies at most `max` bytes of src (stopping at a NUL; trailing spaces dropped if spacepad)
 * into a new NUL-terminated string owned by the caller (free()). NULL src gives "". */
scl_err h5_str_dup(const char *src, size_t max, int spacepad, char **out);

/* A fixed-length (len bytes, at least 1, NUL-padded) UTF-8 string type; closed by the caller. */
hid_t h5_fixed_utf8_type(size_t len);
/* A variable-length UTF-8 string type; the caller closes it with H5Tclose. <0 on failure. */
hid_t h5_vlen_utf8_type(void);

/* ---------------------------------------------------------------------------------------- */
/* Checksums (h5_checksum.c)                                                                 */

#define H5_SUM_ATTR "xxh3_64"             /* on every dataset: the sum of its element hashes */
#define H5_ATTRS_SUM_ATTR "attrs_xxh3_64" /* on the root: the sum over every attribute */

/* Sum over n elements of esize bytes of XXH3-64(element, seed = first + k), wrapping. */
uint64_t h5_sum_elems(const void *data, int64_t n, size_t esize, uint64_t first);
/* The same over n strings (their bytes without the terminator). */
uint64_t h5_sum_strings(const char *const *strs, int64_t n, uint64_t first);
/* The same over n fixed-length strings of `width` bytes, each up to its first NUL. */
uint64_t h5_sum_fixed_strings(const char *buf, int64_t n, size_t width);
/* The element sum of a block-cyclic piece of an ? x n matrix, packed row-major (nr x nc), of
 * process (myrow, mycol) of an nprow x npcol grid with mb x nb blocks: global indices as seeds. */
uint64_t h5_sum_cyclic_piece(const double *packed, int64_t nr, int64_t nc, int64_t n, int64_t mb,
                             int64_t nb, int myrow, int mycol, int nprow, int npcol);
/* *sum becomes the wrapping sum of every rank's *sum (group files; unchanged on serial files).
 * Collective; this rank's status. */
scl_err h5_sum_reduce(const h5_file *f, uint64_t *sum);
/* The dimension term every dataset checksum adds once. */
uint64_t h5_sum_shape(int ndim, const hsize_t *dims);
/* Writes the uint64 attribute `key` = rank 0's `sum` on `obj` (collective on a group file). */
scl_err h5_checksum_write(h5_file *f, const char *obj, const char *key, uint64_t sum);
/* Compares the stored checksum of open dataset `dset` with `sum` (SCL_ERR_FORMAT "checksum
 * mismatch" naming file and dataset); a dataset without one passes. */
scl_err h5_checksum_check(h5_file *f, const char *name, hid_t dset, uint64_t sum);
/* Writes the root attribute checksum over every attribute of the file (collective on a group
 * file; rank 0's walk). Called by commit, after everything else is written. */
scl_err h5_attrs_seal(h5_file *f);
/* Checks the root attribute checksum of a file opened for reading; sets f->checksummed. */
scl_err h5_attrs_verify(h5_file *f);

/* Blobs (h5_blob.c): attribute "xxh3_64_blocks" of a blob, uint64, is the wrapping sum over its
 * blocks of H5_BLOB_BLOCK bytes (the last one shorter) of XXH3-64(block, seed = block index), plus
 * the dimension term: the same kind of order-free sum as a dataset's, over blocks instead of
 * bytes so that hashing keeps up with reading. */
#define H5_BLOB_SUM_ATTR "xxh3_64_blocks"
#define H5_BLOB_BLOCK (64 * 1024)
/* Writes the checksum of every blob created in f, read back from the file (commit, before the
 * attribute checksum). */
scl_err h5_blobs_seal(h5_file *f);
/* Checks blob `name` against its stored checksum (SCL_ERR_FORMAT "checksum mismatch"); a blob
 * without one (written before blob checksums) passes. */
scl_err h5_blob_verify(h5_file *f, const char *name);

#endif /* SAFECL_H5_INTERNAL_H */
