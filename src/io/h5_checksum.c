/* h5_checksum.c: XXH3-64 checksums of datasets and attributes, so that a damaged file is refused
 * with "checksum mismatch" instead of read as wrong numbers (docs/architecture.md, failure model).
 *
 * The dataset checksum (attribute "xxh3_64" of the dataset, uint64) is a sum, wrapping modulo
 * 2^64, of one XXH3-64 per element: the element's bytes in the stored little-endian type, seeded
 * with its row-major index k, plus one XXH3-64 of the dimensions (seed 2^64 - 1). A string
 * element is its bytes without the terminator. Because the sum does not depend on which process
 * hashed which element or in which order, the ranks of a group that each hold a block-cyclic piece
 * of a matrix hash their own elements and add the partial sums (h5_cyclic.c), and a reader on any
 * other number of ranks does the same over its own share (h5_file_verify): both reach the value of
 * one process hashing the whole matrix. The price is one short hash per element instead of one
 * per row, a few ns per element (under a second for a checkpoint's largest Gram matrix), small
 * beside writing or reading the bytes.
 *
 * The attribute checksum (root attribute "attrs_xxh3_64") is the wrapping sum, over every object
 * of the file (the root and every link, by path) and every attribute but itself, of one XXH3-64
 * of the object path and kind (group or dataset), the attribute name and its value (integers as int64, other numbers as
 * double, strings as their bytes, anything else as HDF5 stores it). It is written last, at commit,
 * so it covers the dataset checksums too, and is checked when the file is opened for reading.
 * A file without it was written before checksums (or by another tool) and is read unverified,
 * except that a root attribute one byte away from its name is taken for a damaged one.
 * Blobs (h5_blob.c), written in pieces and read without HDF5, carry a checksum of their own
 * over 64 KiB blocks (H5_BLOB_SUM_ATTR), computed at commit and checked by h5_blob_locate. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "h5_internal.h"

#define SHAPE_SEED UINT64_MAX

uint64_t h5_sum_elems(const void *data, int64_t n, size_t esize, uint64_t first) {
  const unsigned char *p = data;
  uint64_t s = 0;
  for (int64_t k = 0; k < n; k++)
    s += XXH3_64bits_withSeed(p + (size_t)k * esize, esize, first + (uint64_t)k);
  return s;
}

uint64_t h5_sum_shape(int ndim, const hsize_t *dims) {
  uint64_t d[H5_MAX_DIMS];
  for (int k = 0; k < ndim && k < H5_MAX_DIMS; k++) d[k] = (uint64_t)dims[k];
  return XXH3_64bits_withSeed(d, (size_t)ndim * sizeof d[0], SHAPE_SEED);
}

uint64_t h5_sum_strings(const char *const *strs, int64_t n, uint64_t first) {
  uint64_t s = 0;
  for (int64_t k = 0; k < n; k++)
    s += XXH3_64bits_withSeed(strs[k], strlen(strs[k]), first + (uint64_t)k);
  return s;
}

uint64_t h5_sum_fixed_strings(const char *buf, int64_t n, size_t width) {
  uint64_t s = 0;
  for (int64_t k = 0; k < n; k++) {
    const char *p = buf + (size_t)k * width;
    s += XXH3_64bits_withSeed(p, strnlen(p, width), (uint64_t)k);
  }
  return s;
}

uint64_t h5_sum_cyclic_piece(const double *packed, int64_t nr, int64_t nc, int64_t n, int64_t mb,
                             int64_t nb, int myrow, int mycol, int nprow, int npcol) {
  uint64_t s = 0;
  for (int64_t il = 0; il < nr; il++) {
    int64_t i = (il / mb * nprow + myrow) * mb + il % mb;
    for (int64_t jl = 0; jl < nc; jl++) {
      int64_t j = (jl / nb * npcol + mycol) * nb + jl % nb;
      s += XXH3_64bits_withSeed(packed + il * nc + jl, sizeof(double), (uint64_t)(i * n + j));
    }
  }
  return s;
}

scl_err h5_sum_reduce(const h5_file *f, uint64_t *sum) {
  int64_t limbs[4];
  for (int k = 0; k < 4; k++) limbs[k] = (int64_t)((*sum >> (16 * k)) & 0xffff);
  SCL_CALL(h5_group_reduce_i64(f, limbs, 4, 1));
  *sum = 0;
  for (int k = 0; k < 4; k++) *sum += (uint64_t)limbs[k] << (16 * k);
  return SCL_OK;
}

/* A u64 attribute of object o (open): 1 if present (value in *v), 0 if absent, <0 on failure. */
static int attr_get_u64(hid_t o, const char *key, uint64_t *v) {
  htri_t e = H5Aexists(o, key);
  if (e <= 0) return (int)e;
  hid_t a = H5Aopen(o, key, H5P_DEFAULT);
  if (a < 0) return -1;
  herr_t rc = H5Aread(a, H5T_NATIVE_UINT64, v);
  H5Aclose(a);
  return rc < 0 ? -1 : 1;
}

scl_err h5_checksum_write(h5_file *f, const char *obj, const char *key, uint64_t sum) {
  SCL_CALL(h5_group_bcast(f, &sum, sizeof sum, key)); /* rank 0's value, as for every attribute */
  scl_err err = SCL_OK;
  hid_t o = H5Oopen(f->id, h5_obj_name(obj), H5P_DEFAULT), space = -1, a = -1;
  if (o < 0) {
    err = H5_FAIL(f, obj, "H5Oopen");
  } else if ((space = H5Screate(H5S_SCALAR)) < 0 ||
             (a = H5Acreate2(o, key, H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
             H5Awrite(a, H5T_NATIVE_UINT64, &sum) < 0) {
    err = H5_FAIL(f, obj, "H5Acreate2/H5Awrite (checksum)");
  }
  if (a >= 0) H5Aclose(a);
  if (space >= 0) H5Sclose(space);
  if (o >= 0) H5Oclose(o);
  return h5_group_agree(f, err);
}

scl_err h5_checksum_check(h5_file *f, const char *name, hid_t dset, uint64_t sum) {
  uint64_t stored = 0;
  int have = attr_get_u64(dset, H5_SUM_ATTR, &stored);
  if (have < 0) return H5_FAIL(f, name, "H5Aread (checksum)");
  if (!have) return SCL_OK; /* written before checksums, or by another tool */
  SCL_CHECK(stored == sum, SCL_ERR_FORMAT,
            "HDF5 file '%s', dataset '%s': checksum mismatch (stored %016llx, computed %016llx): "
            "the file is damaged",
            f->path, name, (unsigned long long)stored, (unsigned long long)sum);
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Attributes                                                                                */

typedef struct attr_walk {
  const char *path; /* the object's path, "/" for the root */
  int type;         /* the object's H5I type (group, dataset, datatype) */
  uint64_t sum;
  int failed;
} attr_walk;

/* Hashes the value of attribute a in its canonical form into st. 0 or <0 on failure. */
static int attr_hash_value(hid_t a, XXH3_state_t *st) {
  hid_t type = H5Aget_type(a), space = H5Aget_space(a), mt = -1;
  hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
  int rc = -1;
  void *buf = NULL;
  if (type < 0 || n < 0) goto done;
  H5T_class_t cls = H5Tget_class(type);
  if (cls == H5T_STRING && H5Tis_variable_str(type) > 0) {
    char **s = calloc((size_t)(n ? n : 1), sizeof *s);
    if (!s || (mt = H5Tcopy(type)) < 0 || H5Aread(a, mt, s) < 0) {
      free(s);
      goto done;
    }
    for (hssize_t k = 0; k < n; k++)
      XXH3_64bits_update(st, s[k] ? s[k] : "", s[k] ? strlen(s[k]) + 1 : 1);
    H5_VLEN_RECLAIM(mt, space, s);
    free(s);
    rc = 0;
    goto done;
  }
  size_t esize = cls == H5T_INTEGER ? 8 : cls == H5T_FLOAT ? 8 : H5Tget_size(type);
  if (cls == H5T_INTEGER)
    mt = H5Tcopy(H5T_NATIVE_INT64);
  else if (cls == H5T_FLOAT)
    mt = H5Tcopy(H5T_NATIVE_DOUBLE);
  else
    mt = H5Tcopy(type);
  if (mt < 0 || esize == 0 || !(buf = calloc((size_t)(n ? n : 1), esize))) goto done;
  if (H5Aread(a, mt, buf) < 0) goto done;
  XXH3_64bits_update(st, &cls, sizeof cls);
  XXH3_64bits_update(st, buf, (size_t)n * esize);
  rc = 0;
done:
  free(buf);
  if (mt >= 0) H5Tclose(mt);
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
  return rc;
}

static herr_t attr_visit(hid_t o, const char *name, const H5A_info_t *info, void *data) {
  (void)info;
  attr_walk *w = data;
  if (!strcmp(w->path, "/") && !strcmp(name, H5_ATTRS_SUM_ATTR)) return 0;
  XXH3_state_t *st = XXH3_createState();
  hid_t a = st ? H5Aopen(o, name, H5P_DEFAULT) : -1;
  if (a < 0) {
    XXH3_freeState(st);
    w->failed = 1;
    return -1;
  }
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, w->path, strlen(w->path) + 1);
  XXH3_64bits_update(st, &w->type, sizeof w->type);
  XXH3_64bits_update(st, name, strlen(name) + 1);
  int rc = attr_hash_value(a, st);
  H5Aclose(a);
  if (rc == 0) w->sum += XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (rc) w->failed = 1;
  return rc ? -1 : 0;
}

static int attrs_of(hid_t loc, const char *path, uint64_t *sum) {
  attr_walk w = {path, 0, 0, 0};
  hid_t o = H5Oopen(loc, strcmp(path, "/") ? path : ".", H5P_DEFAULT);
  if (o < 0) return -1;
  w.type = (int)H5Iget_type(o);
  hsize_t idx = 0;
  herr_t rc = H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_visit, &w);
  H5Oclose(o);
  if (rc < 0 || w.failed) return -1;
  *sum += w.sum;
  return 0;
}

static herr_t link_visit(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)info;
  return attrs_of(g, name, data) < 0 ? -1 : 0;
}

static scl_err attrs_sum(h5_file *f, uint64_t *sum) {
  *sum = 0;
  if (attrs_of(f->id, "/", sum) < 0 ||
      H5Lvisit(f->id, H5_INDEX_NAME, H5_ITER_INC, link_visit, sum) < 0)
    return H5_FAIL(f, NULL, "H5Lvisit/H5Aiterate2 (attribute checksum)");
  return SCL_OK;
}

scl_err h5_attrs_seal(h5_file *f) {
  uint64_t sum = 0;
  scl_err err = SCL_OK;
  if (f->rank == 0) err = attrs_sum(f, &sum);
  SCL_CALL(h5_group_agree(f, err));
  SCL_CALL(h5_checksum_write(f, NULL, H5_ATTRS_SUM_ATTR, sum));
  return SCL_OK;
}

/* 1 if `name` differs from H5_ATTRS_SUM_ATTR in exactly one byte. */
static herr_t near_miss(hid_t o, const char *name, const H5A_info_t *info, void *data) {
  (void)o;
  (void)info;
  const char *want = H5_ATTRS_SUM_ATTR;
  if (strlen(name) != strlen(want)) return 0;
  int diff = 0;
  for (size_t i = 0; name[i]; i++) diff += name[i] != want[i];
  if (diff == 1) {
    *(int *)data = 1;
    return 1;
  }
  return 0;
}

scl_err h5_attrs_verify(h5_file *f) {
  uint64_t stored = 0, sum = 0;
  int have = attr_get_u64(f->id, H5_ATTRS_SUM_ATTR, &stored);
  if (have < 0) return H5_FAIL(f, "/", "H5Aread (attribute checksum)");
  f->checksummed = have;
  if (!have) {
    int damaged = 0;
    hsize_t idx = 0;
    if (H5Aiterate2(f->id, H5_INDEX_NAME, H5_ITER_INC, &idx, near_miss, &damaged) < 0)
      return H5_FAIL(f, "/", "H5Aiterate2");
    SCL_CHECK(!damaged, SCL_ERR_FORMAT,
              "HDF5 file '%s': attribute checksum mismatch (the name of the root attribute '%s' "
              "is damaged): the file is damaged",
              f->path, H5_ATTRS_SUM_ATTR);
    return SCL_OK;
  }
  SCL_CALL(attrs_sum(f, &sum));
  SCL_CHECK(stored == sum, SCL_ERR_FORMAT,
            "HDF5 file '%s': attribute checksum mismatch (stored %016llx, computed %016llx): "
            "the file is damaged",
            f->path, (unsigned long long)stored, (unsigned long long)sum);
  return SCL_OK;
}

int h5_file_checksummed(const h5_file *f) { return f && f->checksummed; }

int h5_file_sealed(const h5_file *f) { return f && f->sealed; }

/* ---------------------------------------------------------------------------------------- */
/* Verifying a whole file                                                                    */

typedef struct name_list {
  char **names;
  int n, cap, failed;
} name_list;

static herr_t collect_dataset(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  name_list *l = data;
  if (info->type != H5L_TYPE_HARD) return 0;
  hid_t o = H5Oopen(g, name, H5P_DEFAULT);
  if (o < 0) return -1;
  int is_dset = H5Iget_type(o) == H5I_DATASET;
  H5Oclose(o);
  if (!is_dset) return 0;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 32;
    char **grown = realloc(l->names, (size_t)cap * sizeof *grown);
    if (!grown) {
      l->failed = 1;
      return -1;
    }
    l->names = grown;
    l->cap = cap;
  }
  if (!(l->names[l->n] = strdup(name))) {
    l->failed = 1;
    return -1;
  }
  l->n++;
  return 0;
}

/* This rank's share of dataset `name`'s element sum: rows [r0, r1) of its first dimension, read
 * in slabs of about 1 MiB in the little-endian form of the stored type. *has = 0 for a dataset
 * without a checksum; *shape gets the dimension term. String datasets are read whole by share
 * 0 with h5_read_strings, which checks them itself. */
static scl_err verify_share(h5_file *f, const char *name, int share, int shares, uint64_t *sum,
                            uint64_t *stored, uint64_t *shape, int *has) {
  *sum = *shape = *stored = 0;
  hid_t dset = H5Dopen2(f->id, name, H5P_DEFAULT), ftype = -1, space = -1, mt = -1, ms = -1;
  if (dset < 0) return H5_FAIL(f, name, "H5Dopen2");
  scl_err err = SCL_OK;
  void *buf = NULL;
  *has = attr_get_u64(dset, H5_SUM_ATTR, stored);
  hsize_t dims[H5_MAX_DIMS] = {0};
  int nd = -1;
  if (*has < 0 || (ftype = H5Dget_type(dset)) < 0 || (space = H5Dget_space(dset)) < 0 ||
      (nd = H5Sget_simple_extent_ndims(space)) < 0 || nd > H5_MAX_DIMS ||
      H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
    err = nd > H5_MAX_DIMS ? SCL_ERROR(SCL_ERR_FORMAT, "HDF5 file '%s', dataset '%s': rank %d",
                                       f->path, name, nd)
                           : H5_FAIL(f, name, "H5Dget_space/H5Dget_type");
    goto done;
  }
  if (*has == 0) { /* a blob's checksum is over blocks: checked whole by share 0 */
    htri_t blob = H5Aexists(dset, H5_BLOB_SUM_ATTR);
    if (blob < 0)
      err = H5_FAIL(f, name, "H5Aexists (blob checksum)");
    else if (blob > 0 && share == 0)
      err = h5_blob_verify(f, name);
  }
  if (*has <= 0) goto done;
  *shape = h5_sum_shape(nd, dims);
  if (H5Tget_class(ftype) == H5T_STRING) {
    *has = 0; /* checked by h5_read_strings against the stored value */
    if (share == 0) {
      char **strs = NULL;
      int64_t n = 0;
      err = h5_read_strings(f, name, &strs, &n);
      h5_strings_free(strs, n);
    }
    goto done;
  }
  size_t esize = H5Tget_size(ftype);
  hsize_t rows = nd ? dims[0] : 1, rowlen = 1;
  for (int k = 1; k < nd; k++) rowlen *= dims[k];
  hsize_t r0 = rows * (hsize_t)share / (hsize_t)shares;
  hsize_t r1 = rows * (hsize_t)(share + 1) / (hsize_t)shares;
  hsize_t rowbytes = rowlen * esize;
  hsize_t slab = ((hsize_t)1 << 20) / (rowbytes > 0 ? rowbytes : 1);
  if (slab < 1) slab = 1;
  if ((mt = H5Tcopy(ftype)) < 0 || H5Tset_order(mt, H5T_ORDER_LE) < 0) {
    err = H5_FAIL(f, name, "H5Tcopy (checksum type)");
    goto done;
  }
  if (r1 > r0) err = scl_alloc((size_t)(slab * rowlen * esize), "checksum slab", &buf);
  for (hsize_t r = r0; !err && r < r1; r += slab) {
    hsize_t nr = r + slab < r1 ? slab : r1 - r, start[H5_MAX_DIMS] = {0}, cnt[H5_MAX_DIMS];
    for (int k = 0; k < nd; k++) cnt[k] = dims[k];
    start[0] = r;
    if (nd) cnt[0] = nr;
    hsize_t numel = nr * rowlen;
    if ((nd && H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0) ||
        (ms = H5Screate_simple(1, &numel, NULL)) < 0 ||
        H5Dread(dset, mt, ms, space, H5P_DEFAULT, buf) < 0) {
      err = H5_FAIL(f, name, "H5Dread (checksum)");
    } else {
      *sum += h5_sum_elems(buf, (int64_t)numel, esize, (uint64_t)(r * rowlen));
    }
    if (ms >= 0) H5Sclose(ms);
    ms = -1;
  }
done:
  scl_free(buf);
  if (mt >= 0) H5Tclose(mt);
  if (space >= 0) H5Sclose(space);
  if (ftype >= 0) H5Tclose(ftype);
  H5Dclose(dset);
  return err;
}

/* The 64-bit wrapping sums of v (n entries) over `readers`, as four 16-bit limbs each so that the
 * int64 reduction never overflows. */
static scl_err reduce_sums(const dist_comm *readers, uint64_t *v, int n) {
  int64_t *limbs = calloc((size_t)n * 4 + 1, sizeof *limbs);
  SCL_CHECK(limbs, SCL_ERR_NOMEM, "checksum limbs of %d datasets", n);
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 4; k++) limbs[4 * i + k] = (int64_t)((v[i] >> (16 * k)) & 0xffff);
  scl_err err = dist_allreduce_i64(readers, limbs, (int64_t)n * 4, DIST_SUM);
  for (int i = 0; !err && i < n; i++) {
    uint64_t s = 0;
    for (int k = 0; k < 4; k++) s += (uint64_t)limbs[4 * i + k] << (16 * k);
    v[i] = s;
  }
  free(limbs);
  return err;
}

scl_err h5_file_verify(h5_file *f, const dist_comm *readers) {
  SCL_CHECK(f, SCL_ERR_ARG, "h5_file_verify: NULL file");
  int share = readers ? dist_comm_rank(readers) : 0, shares = readers ? dist_comm_size(readers) : 1;
  name_list l = {0};
  scl_err err = SCL_OK;
  uint64_t *rest = NULL;
  int *has = NULL;
  if (H5Lvisit(f->id, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &l) < 0)
    err = l.failed ? SCL_ERROR(SCL_ERR_NOMEM, "dataset names of '%s'", f->path)
                   : H5_FAIL(f, NULL, "H5Lvisit (datasets)");
  if (!err && (!(rest = calloc((size_t)l.n + 1, sizeof *rest)) ||
               !(has = calloc((size_t)l.n + 1, sizeof *has))))
    err = SCL_ERROR(SCL_ERR_NOMEM, "checksums of '%s'", f->path);
  /* rest[i]: share 0 contributes stored - shape - its elements, the others minus theirs, so
   * that the sum over the readers is 0 exactly when the checksum matches. */
  for (int i = 0; !err && i < l.n; i++) {
    uint64_t part = 0, stored = 0, shape = 0;
    err = verify_share(f, l.names[i], share, shares, &part, &stored, &shape, &has[i]);
    rest[i] = (share == 0 ? stored - shape : 0) - part;
  }
  if (readers) err = dist_agree(readers, err);
  if (!err && readers && l.n) err = reduce_sums(readers, rest, l.n);
  for (int i = 0; !err && i < l.n; i++)
    if (has[i] > 0 && rest[i] != 0)
      err = SCL_ERROR(SCL_ERR_FORMAT,
                      "HDF5 file '%s', dataset '%s': checksum mismatch: the file is damaged",
                      f->path, l.names[i]);
  for (int i = 0; i < l.n; i++) free(l.names[i]);
  free(l.names);
  free(rest);
  free(has);
  return err;
}
