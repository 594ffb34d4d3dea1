/* h5_blob.c: byte blobs inside an HDF5 file that can be read without HDF5.
 *
 * A blob is a contiguous 1-D uint8 dataset allocated when it is created; its bytes therefore sit
 * at one fixed offset in the file, which h5_blob_locate reports, so readers can mmap the file and
 * read the blob directly: lock-free from any number of threads (the HDF5 build here is not
 * thread-safe) and with no copy. `safecl pack` stores a dataset's encoded images this way.
 *
 * Checksum: a blob is written in pieces at any offsets, so its checksum (H5_BLOB_SUM_ATTR,
 * h5_internal.h) is computed at commit from the bytes read back from the file, and checked by
 * h5_blob_locate before it hands the bytes out in a file without the whole-file checksum (a
 * sealed file's bytes were all checked at open, h5_whole.c) and by h5_file_verify: one read of
 * the blob, hashed in 64 KiB blocks. A blob without a checksum was written before
 * blob checksums and is read unverified, as other files without checksums are. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "h5_internal.h"

static scl_err blob_open(h5_file *f, const char *name, hid_t *dset) {
  h5_quiet();
  if ((*dset = H5Dopen2(f->id, name, H5P_DEFAULT)) < 0) return H5_FAIL(f, name, "H5Dopen2");
  return SCL_OK;
}

scl_err h5_blob_create(h5_file *f, const char *name, int64_t nbytes) {
  SCL_CALL(h5_require_writable(f, name));
  SCL_CHECK(nbytes >= 1, SCL_ERR_ARG, "HDF5 file '%s', blob '%s': size %lld", f->path, name,
            (long long)nbytes);
  hsize_t dims[1] = {(hsize_t)nbytes};
  hid_t lcpl = -1, dcpl = -1, space = -1, dset = -1;
  scl_err err = SCL_OK;
  if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
      (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
      H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
      H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
    err = H5_FAIL(f, name, "H5Pcreate/H5Pset_layout");
    goto done;
  }
  if ((space = H5Screate_simple(1, dims, NULL)) < 0) {
    err = H5_FAIL(f, name, "H5Screate_simple");
    goto done;
  }
  if ((dset = H5Dcreate2(f->id, name, H5T_STD_U8LE, space, lcpl, dcpl, H5P_DEFAULT)) < 0) {
    err = H5_FAIL(f, name, "H5Dcreate2");
    goto done;
  }
  char **grown = realloc(f->blobs, (size_t)(f->n_blobs + 1) * sizeof *grown);
  if (grown) f->blobs = grown;
  if (!grown || !(f->blobs[f->n_blobs] = strdup(name)))
    err = SCL_ERROR(SCL_ERR_NOMEM, "HDF5 file '%s': blob name '%s'", f->path, name);
  else
    f->n_blobs++;
done:
  if (dset >= 0) H5Dclose(dset);
  if (space >= 0) H5Sclose(space);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (lcpl >= 0) H5Pclose(lcpl);
  return err;
}

scl_err h5_blob_write(h5_file *f, const char *name, int64_t offset, const void *data, int64_t len) {
  SCL_CALL(h5_require_writable(f, name));
  if (len == 0) return SCL_OK;
  hid_t dset = -1, fspace = -1, mspace = -1;
  scl_err err = SCL_OK;
  SCL_CALL(blob_open(f, name, &dset));
  hsize_t start[1] = {(hsize_t)offset}, count[1] = {(hsize_t)len};
  if ((fspace = H5Dget_space(dset)) < 0 ||
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
      (mspace = H5Screate_simple(1, count, NULL)) < 0) {
    err = H5_FAIL(f, name, "H5Sselect_hyperslab");
    goto done;
  }
  if (H5Dwrite(dset, H5T_NATIVE_UCHAR, mspace, fspace, H5P_DEFAULT, data) < 0)
    err = H5_FAIL(f, name, "H5Dwrite");
done:
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  H5Dclose(dset);
  return err;
}

/* The checksum of open blob dset of n bytes, read back in slabs of 16 blocks. */
static scl_err blob_sum(h5_file *f, const char *name, hid_t dset, uint64_t *sum) {
  hid_t fspace = -1, mspace = -1;
  hsize_t dims[1] = {0};
  void *buf = NULL;
  scl_err err = SCL_OK;
  if ((fspace = H5Dget_space(dset)) < 0 || H5Sget_simple_extent_ndims(fspace) != 1 ||
      H5Sget_simple_extent_dims(fspace, dims, NULL) < 0) {
    err = H5_FAIL(f, name, "H5Dget_space (blob)");
    goto done;
  }
  *sum = h5_sum_shape(1, dims);
  const hsize_t slab = 16 * (hsize_t)H5_BLOB_BLOCK;
  SCL_CALL_GOTO(err, scl_alloc((size_t)slab, "blob checksum slab", &buf), done);
  for (hsize_t at = 0; at < dims[0]; at += slab) {
    hsize_t count[1] = {dims[0] - at < slab ? dims[0] - at : slab}, start[1] = {at};
    if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (mspace = H5Screate_simple(1, count, NULL)) < 0 ||
        H5Dread(dset, H5T_NATIVE_UCHAR, mspace, fspace, H5P_DEFAULT, buf) < 0) {
      err = H5_FAIL(f, name, "H5Dread (blob checksum)");
      goto done;
    }
    H5Sclose(mspace);
    mspace = -1;
    for (hsize_t b = 0; b < count[0]; b += H5_BLOB_BLOCK) {
      size_t len = count[0] - b < H5_BLOB_BLOCK ? (size_t)(count[0] - b) : H5_BLOB_BLOCK;
      *sum += XXH3_64bits_withSeed((const char *)buf + b, len, (at + b) / H5_BLOB_BLOCK);
    }
  }
done:
  scl_free(buf);
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  return err;
}

scl_err h5_blobs_seal(h5_file *f) {
  for (int i = 0; i < f->n_blobs; i++) {
    hid_t dset = -1;
    uint64_t sum = 0;
    SCL_CALL(blob_open(f, f->blobs[i], &dset));
    scl_err err = blob_sum(f, f->blobs[i], dset, &sum);
    H5Dclose(dset);
    SCL_CALL(err);
    SCL_CALL(h5_checksum_write(f, f->blobs[i], H5_BLOB_SUM_ATTR, sum));
  }
  return SCL_OK;
}

scl_err h5_blob_verify(h5_file *f, const char *name) {
  hid_t dset = -1, a = -1;
  uint64_t stored = 0, sum = 0;
  SCL_CALL(blob_open(f, name, &dset));
  scl_err err = SCL_OK;
  htri_t have = H5Aexists(dset, H5_BLOB_SUM_ATTR);
  if (have < 0 || (have > 0 && ((a = H5Aopen(dset, H5_BLOB_SUM_ATTR, H5P_DEFAULT)) < 0 ||
                                H5Aread(a, H5T_NATIVE_UINT64, &stored) < 0)))
    err = H5_FAIL(f, name, "H5Aread (blob checksum)");
  if (a >= 0) H5Aclose(a);
  if (!err && have > 0) err = blob_sum(f, name, dset, &sum);
  if (!err && have > 0 && stored != sum)
    err = SCL_ERROR(SCL_ERR_FORMAT,
                    "HDF5 file '%s', blob '%s': checksum mismatch (stored %016llx, computed "
                    "%016llx): the file is damaged",
                    f->path, name, (unsigned long long)stored, (unsigned long long)sum);
  H5Dclose(dset);
  return err;
}

scl_err h5_blob_locate(h5_file *f, const char *name, int64_t *file_offset, int64_t *nbytes) {
  hid_t dset = -1, space = -1;
  scl_err err = SCL_OK;
  if (!h5_file_sealed(f)) SCL_CALL(h5_blob_verify(f, name)); /* sealed: checked whole at open */
  SCL_CALL(blob_open(f, name, &dset));
  haddr_t off = H5Dget_offset(dset);
  hssize_t n = -1;
  if ((space = H5Dget_space(dset)) >= 0) n = H5Sget_simple_extent_npoints(space);
  if (off == HADDR_UNDEF || n < 1)
    err = SCL_ERROR(SCL_ERR_FORMAT,
                    "HDF5 file '%s': '%s' is not a contiguous, allocated byte blob (was it "
                    "written by safecl pack?)",
                    f->path, name);
  *file_offset = (int64_t)off;
  *nbytes = (int64_t)n;
  if (space >= 0) H5Sclose(space);
  H5Dclose(dset);
  return err;
}
