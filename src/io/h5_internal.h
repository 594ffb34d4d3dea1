/* h5_internal.h: what the h5_*.c files share and nobody else sees: the file struct, the HDF5
 * error translation and object lookup. Not installed; include only from src/io/h5_*.c. */
#ifndef SAFECL_H5_INTERNAL_H
#define SAFECL_H5_INTERNAL_H

#include <hdf5.h>

#include "safecl/h5.h"

/* Releases what HDF5 allocated while reading variable-length data. H5Treclaim replaced
 * H5Dvlen_reclaim in 1.12; 1.10's headers declare it but its library does not export it. */
#if H5_VERSION_GE(1, 12, 0)
#define H5_VLEN_RECLAIM(type, space, buf) H5Treclaim((type), (space), H5P_DEFAULT, (buf))
#else
#define H5_VLEN_RECLAIM(type, space, buf) H5Dvlen_reclaim((type), (space), H5P_DEFAULT, (buf))
#endif

_Static_assert(sizeof(hid_t) == sizeof(int64_t), "h5_file_hid assumes a 64-bit hid_t");

struct h5_file {
  hid_t id;
  char *path;     /* destination, as given */
  char *tmp_path; /* the file HDF5 writes while an atomic create is uncommitted, else NULL */
  int writable;
};

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
 * into a new NUL-terminated string owned by the caller (scl_free). NULL src gives "". */
scl_err h5_str_dup(const char *src, size_t max, int spacepad, char **out);

/* A variable-length UTF-8 string type; the caller closes it with H5Tclose. <0 on failure. */
hid_t h5_vlen_utf8_type(void);

#endif /* SAFECL_H5_INTERNAL_H */
