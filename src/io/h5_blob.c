/* h5_blob.c: byte blobs inside an HDF5 file that can be read without HDF5.
 *
 * A blob is a contiguous 1-D uint8 dataset allocated when it is created; its bytes therefore sit
 * at one fixed offset in the file, which h5_blob_locate reports, so readers can mmap the file and
 * read the blob directly: lock-free from any number of threads (the HDF5 build here is not
 * thread-safe) and with no copy. `safecl pack` stores a dataset's encoded images this way. */
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
  if ((dset = H5Dcreate2(f->id, name, H5T_STD_U8LE, space, lcpl, dcpl, H5P_DEFAULT)) < 0)
    err = H5_FAIL(f, name, "H5Dcreate2");
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

scl_err h5_blob_locate(h5_file *f, const char *name, int64_t *file_offset, int64_t *nbytes) {
  hid_t dset = -1, space = -1;
  scl_err err = SCL_OK;
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
