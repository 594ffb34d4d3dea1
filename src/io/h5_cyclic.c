/* h5_cyclic.c: 2-D block-cyclic (ScaLAPACK) matrices stored as plain m x n float64 datasets, so
 * that a group of any size, or one process, can read back what a group of another size wrote.
 *
 * A rank's piece of a block-cyclic dimension is regular: full blocks of mb rows starting at
 * myrow * mb with stride nprow * mb, plus at most one partial block at the end of the matrix.
 * The file selection is therefore at most four regular hyperslabs (full x full, full x edge,
 * edge x full, edge x edge) whatever the matrix size, not one per block. HDF5 walks a selection
 * in row-major order of the file and global indices grow with local ones, so the selection's
 * order is simply the local piece in row-major order: writing packs (transposes) the column-major
 * piece into a scratch buffer, reading unpacks it. That scratch copy, as large as the local
 * piece, is the price of not describing a transpose to HDF5 (hyperslabs cannot); a checkpoint
 * is rare enough to afford it. On a group file the write is one collective MPI-IO transfer.
 * The file layout never records the grid: the dataset is the matrix, nothing else. */
#include <stdio.h>
#include <string.h>

#include "h5_internal.h"

int64_t h5_cyclic_numroc(int64_t n, int64_t nb, int iproc, int nprocs) {
  if (n <= 0 || nb <= 0 || nprocs <= 0) return 0;
  int64_t nblocks = n / nb, count = nblocks / nprocs * nb;
  int64_t extra = nblocks % nprocs;
  if (iproc < extra)
    count += nb;
  else if (iproc == extra)
    count += n % nb;
  return count;
}

/* One dimension of this rank's piece: the regular part (count blocks of `block` elements from
 * start, stride apart) and the partial edge block (edge elements at edge_start, if any). */
typedef struct cyc_dim {
  hsize_t start, stride, count, block;
  hsize_t edge_start, edge;
  int64_t nloc;
} cyc_dim;

static cyc_dim cyc_dim_of(int64_t n, int64_t nb, int iproc, int nprocs) {
  cyc_dim d;
  memset(&d, 0, sizeof d);
  int64_t full = n / nb; /* whole blocks; block b belongs to process b % nprocs */
  d.block = (hsize_t)nb;
  d.start = (hsize_t)iproc * (hsize_t)nb;
  d.stride = (hsize_t)nprocs * (hsize_t)nb;
  d.count = iproc < full ? (hsize_t)((full - iproc + nprocs - 1) / nprocs) : 0;
  if (n % nb != 0 && full % nprocs == iproc) {
    d.edge_start = (hsize_t)(full * nb);
    d.edge = (hsize_t)(n % nb);
  }
  d.nloc = (int64_t)(d.count * d.block + d.edge);
  return d;
}

/* The layout arguments, checked once and shared by write and read. */
typedef struct cyc_layout {
  int64_t m, n, mb, nb;
  int nprow, npcol, myrow, mycol, holds;
  int64_t lld;
  cyc_dim row, col;
} cyc_layout;

static scl_err cyc_layout_check(const h5_file *f, const char *name, cyc_layout *L,
                                const double *local) {
  const char *path = f ? f->path : "?";
  SCL_CHECK(f && name && name[0], SCL_ERR_ARG, "h5 cyclic: NULL file or empty dataset name");
  SCL_CHECK(L->m >= 0 && L->n >= 0 && L->mb >= 1 && L->nb >= 1 && L->nprow >= 1 && L->npcol >= 1,
            SCL_ERR_ARG,
            "HDF5 file '%s', dataset '%s': bad block-cyclic layout m=%lld n=%lld "
            "mb=%lld nb=%lld grid %dx%d",
            path, name, (long long)L->m, (long long)L->n, (long long)L->mb, (long long)L->nb,
            L->nprow, L->npcol);
  if (L->holds && (L->myrow < 0 || L->myrow >= L->nprow || L->mycol < 0 || L->mycol >= L->npcol))
    return SCL_ERROR(SCL_ERR_ARG,
                     "HDF5 file '%s', dataset '%s': process (%d, %d) outside the %dx%d grid", path,
                     name, L->myrow, L->mycol, L->nprow, L->npcol);
  memset(&L->row, 0, sizeof L->row);
  memset(&L->col, 0, sizeof L->col);
  if (!L->holds) return SCL_OK;
  L->row = cyc_dim_of(L->m, L->mb, L->myrow, L->nprow);
  L->col = cyc_dim_of(L->n, L->nb, L->mycol, L->npcol);
  int64_t need = L->row.nloc > 1 ? L->row.nloc : 1;
  SCL_CHECK(L->lld >= need, SCL_ERR_ARG,
            "HDF5 file '%s', dataset '%s': lld %lld < %lld local rows of process (%d, %d)", path,
            name, (long long)L->lld, (long long)need, L->myrow, L->mycol);
  if (L->row.nloc * L->col.nloc > 0 && !local)
    return SCL_ERROR(SCL_ERR_ARG, "HDF5 file '%s', dataset '%s': NULL local piece", path, name);
  return SCL_OK;
}

static int64_t cyc_numel(const cyc_layout *L) { return L->holds ? L->row.nloc * L->col.nloc : 0; }

/* Selects this rank's piece in `space` (the m x n file space): up to four regular hyperslabs. */
static herr_t cyc_select(hid_t space, const cyc_layout *L) {
  if (H5Sselect_none(space) < 0) return -1;
  if (cyc_numel(L) == 0) return 0;
  const cyc_dim *r = &L->row, *c = &L->col;
  hsize_t rs[2][4] = {{r->start, r->stride, r->count, r->block}, {r->edge_start, 1, 1, r->edge}};
  hsize_t cs[2][4] = {{c->start, c->stride, c->count, c->block}, {c->edge_start, 1, 1, c->edge}};
  int first = 1;
  for (int a = 0; a < 2; a++) {
    if (a == 0 ? r->count == 0 : r->edge == 0) continue;
    for (int b = 0; b < 2; b++) {
      if (b == 0 ? c->count == 0 : c->edge == 0) continue;
      hsize_t start[2] = {rs[a][0], cs[b][0]}, stride[2] = {rs[a][1], cs[b][1]};
      hsize_t count[2] = {rs[a][2], cs[b][2]}, block[2] = {rs[a][3], cs[b][3]};
      if (H5Sselect_hyperslab(space, first ? H5S_SELECT_SET : H5S_SELECT_OR, start, stride, count,
                              block) < 0)
        return -1;
      first = 0;
    }
  }
  return 0;
}

/* packed[il * nc + jl] = local[il + jl * lld], in cache-sized tiles; unpack is the inverse. */
static void cyc_pack(double *packed, const double *local, int64_t nr, int64_t nc, int64_t lld) {
  const int64_t T = 64;
  for (int64_t i0 = 0; i0 < nr; i0 += T)
    for (int64_t j0 = 0; j0 < nc; j0 += T) {
      int64_t i1 = i0 + T < nr ? i0 + T : nr, j1 = j0 + T < nc ? j0 + T : nc;
      for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++) packed[i * nc + j] = local[i + j * lld];
    }
}

static void cyc_unpack(double *local, const double *packed, int64_t nr, int64_t nc, int64_t lld) {
  const int64_t T = 64;
  for (int64_t j0 = 0; j0 < nc; j0 += T)
    for (int64_t i0 = 0; i0 < nr; i0 += T) {
      int64_t i1 = i0 + T < nr ? i0 + T : nr, j1 = j0 + T < nc ? j0 + T : nc;
      for (int64_t j = j0; j < j1; j++)
        for (int64_t i = i0; i < i1; i++) local[i + j * lld] = packed[i * nc + j];
    }
}

/* Transfers this rank's piece between `packed` and the dataset (write or read). */
static scl_err cyc_transfer(h5_file *f, const char *name, hid_t dset, const cyc_layout *L,
                            double *packed, int write) {
  scl_err err = SCL_OK;
  hsize_t numel = (hsize_t)cyc_numel(L), mdims[1] = {numel ? numel : 1};
  hid_t fspace = -1, mspace = -1, dxpl = write ? h5_dxpl_write(f) : H5P_DEFAULT;
  double dummy = 0.0;
  if (dxpl < 0) return H5_FAIL(f, name, "H5Pset_dxpl_mpio");
  if ((fspace = H5Dget_space(dset)) < 0 || cyc_select(fspace, L) < 0) {
    err = H5_FAIL(f, name, "H5Sselect_hyperslab (block-cyclic piece)");
  } else if ((mspace = H5Screate_simple(1, mdims, NULL)) < 0 ||
             (numel == 0 && H5Sselect_none(mspace) < 0)) {
    err = H5_FAIL(f, name, "H5Screate_simple (memory)");
  } else if (write &&
             H5Dwrite(dset, H5T_NATIVE_DOUBLE, mspace, fspace, dxpl, numel ? packed : &dummy) < 0) {
    err = H5_FAIL(f, name, "H5Dwrite (block-cyclic piece)");
  } else if (!write &&
             H5Dread(dset, H5T_NATIVE_DOUBLE, mspace, fspace, dxpl, numel ? packed : &dummy) < 0) {
    err = H5_FAIL(f, name, "H5Dread (block-cyclic piece)");
  }
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  h5_dxpl_close(dxpl);
  return err;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */

/* Group files: the layout must be the same on every rank and every grid position held by
 * exactly one rank, or pieces would be lost or written twice. `held` has nprow * npcol zeroed
 * entries. Collective; the agreed status. */
static scl_err cyc_group_check(h5_file *f, const char *name, const cyc_layout *L, int64_t *held) {
  int64_t v[12] = {L->m, L->n, L->mb, L->nb, L->nprow, L->npcol};
  for (int k = 0; k < 6; k++) v[6 + k] = -v[k];
  SCL_CALL(h5_group_agree(f, h5_group_reduce_i64(f, v, 12, 0)));
  for (int k = 0; k < 6; k++)
    SCL_CHECK(v[k] == -v[6 + k], SCL_ERR_ARG,
              "HDF5 file '%s', dataset '%s': the ranks passed different block-cyclic "
              "layouts (m, n, mb, nb, nprow, npcol must be equal on every rank)",
              f->path, name);
  int64_t cells = (int64_t)L->nprow * L->npcol;
  if (L->holds) held[L->myrow * L->npcol + L->mycol] = 1;
  SCL_CALL(h5_group_agree(f, h5_group_reduce_i64(f, held, (int)cells, 1)));
  for (int64_t k = 0; k < cells; k++)
    SCL_CHECK(held[k] == 1, SCL_ERR_ARG,
              "HDF5 file '%s', dataset '%s': grid position (%lld, %lld) held by %lld "
              "ranks, expected exactly 1",
              f->path, name, (long long)(k / L->npcol), (long long)(k % L->npcol),
              (long long)held[k]);
  return SCL_OK;
}

/* Creates the m x n float64 dataset: contiguous, never filled (every element is written). */
static scl_err cyc_create(h5_file *f, const char *name, const cyc_layout *L, hid_t *dset) {
  scl_err err = SCL_OK;
  hsize_t dims[2] = {(hsize_t)L->m, (hsize_t)L->n};
  hid_t lcpl = -1, dcpl = -1, space = -1;
  *dset = -1;
  if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0 ||
      (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
      H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0)
    err = H5_FAIL(f, name, "H5Pcreate (dataset properties)");
  else if ((space = H5Screate_simple(2, dims, NULL)) < 0)
    err = H5_FAIL(f, name, "H5Screate_simple");
  else if ((*dset = H5Dcreate2(f->id, name, H5T_IEEE_F64LE, space, lcpl, dcpl, H5P_DEFAULT)) < 0)
    err = H5_FAIL(f, name, "H5Dcreate2");
  if (space >= 0) H5Sclose(space);
  if (dcpl >= 0) H5Pclose(dcpl);
  if (lcpl >= 0) H5Pclose(lcpl);
  return err;
}

scl_err h5_write_f64_cyclic(h5_file *f, const char *name, int64_t m, int64_t n, int64_t mb,
                            int64_t nb, int nprow, int npcol, int myrow, int mycol, int holds,
                            const double *local, int64_t lld) {
  cyc_layout L = {m, n, mb, nb, nprow, npcol, myrow, mycol, holds != 0, lld, {0}, {0}};
  /* Local checks and buffers first, then one verdict: no rank may leave alone before the
   * collective steps that follow. */
  scl_err err = h5_require_writable(f, name);
  if (!err) err = cyc_layout_check(f, name, &L, local);
  int size = h5_group_size(f);
  if (!err && (int64_t)nprow * npcol > size)
    err = SCL_ERROR(SCL_ERR_ARG,
                    "HDF5 file '%s', dataset '%s': a %dx%d grid does not fit %d writing rank%s "
                    "(a serial file takes the whole matrix as a held 1x1 grid)",
                    f->path, name, nprow, npcol, size, size == 1 ? "" : "s");
  if (!err && !h5_file_is_group(f) && !L.holds)
    err = SCL_ERROR(SCL_ERR_ARG, "HDF5 file '%s', dataset '%s': the only writer holds no piece",
                    f->path, name);
  double *packed = NULL;
  int64_t *held = NULL, numel = err ? 0 : cyc_numel(&L);
  if (!err && h5_file_is_group(f))
    err =
        scl_calloc((size_t)nprow * (size_t)npcol * sizeof *held, "grid positions", (void **)&held);
  if (!err && numel > 0)
    err = scl_alloc((size_t)numel * sizeof *packed, "block-cyclic scratch piece", (void **)&packed);
  err = h5_group_agree(f, err);
  if (!err && h5_file_is_group(f)) err = cyc_group_check(f, name, &L, held);
  scl_free(held);
  if (err) {
    scl_free(packed);
    return SCL_TRACE(err);
  }
  if (numel > 0) cyc_pack(packed, local, L.row.nloc, L.col.nloc, lld);
  hid_t dset = -1;
  err = h5_group_agree(f, cyc_create(f, name, &L, &dset));
  if (!err) err = h5_group_agree(f, cyc_transfer(f, name, dset, &L, packed, 1));
  if (dset >= 0) H5Dclose(dset);
  uint64_t sum = numel > 0 ? h5_sum_cyclic_piece(packed, L.row.nloc, L.col.nloc, n, mb, nb, myrow,
                                                 mycol, nprow, npcol)
                           : 0;
  scl_free(packed);
  SCL_CALL(err);
  SCL_CALL(h5_group_agree(f, h5_sum_reduce(f, &sum)));
  const hsize_t dims[2] = {(hsize_t)m, (hsize_t)n};
  SCL_CALL(h5_checksum_write(f, name, H5_SUM_ATTR, sum + h5_sum_shape(2, dims)));
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                   */

/* Opens `name` and checks that it is a 2-D m x n floating-point dataset. */
static scl_err cyc_open(h5_file *f, const char *name, const cyc_layout *L, hid_t *dset) {
  *dset = -1;
  int e = h5_link_exists(f->id, name);
  if (e < 0) return H5_FAIL(f, name, "H5Lexists");
  SCL_CHECK(e != 0, SCL_ERR_FORMAT, "HDF5 file '%s' has no dataset '%s'", f->path, name);
  if ((*dset = H5Dopen2(f->id, name, H5P_DEFAULT)) < 0) return H5_FAIL(f, name, "H5Dopen2");
  scl_err err = SCL_OK;
  hsize_t dims[H5_MAX_DIMS] = {0};
  hid_t space = H5Dget_space(*dset), type = H5Dget_type(*dset);
  int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
  if (space < 0 || type < 0 || nd < 0 || nd > H5_MAX_DIMS ||
      H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
    err = H5_FAIL(f, name, "H5Dget_space/H5Dget_type");
  } else if (nd != 2 || dims[0] != (hsize_t)L->m || dims[1] != (hsize_t)L->n) {
    err = SCL_ERROR(SCL_ERR_FORMAT,
                    "HDF5 file '%s', dataset '%s': %d-D shape (%llu, %llu), expected (%lld, %lld)",
                    f->path, name, nd, (unsigned long long)dims[0],
                    (unsigned long long)(nd > 1 ? dims[1] : 0), (long long)L->m, (long long)L->n);
  } else if (H5Tget_class(type) != H5T_FLOAT) {
    err = SCL_ERROR(SCL_ERR_FORMAT, "HDF5 file '%s', dataset '%s': not floating point", f->path,
                    name);
  }
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  if (err) {
    H5Dclose(*dset);
    *dset = -1;
  }
  return err;
}

scl_err h5_read_f64_cyclic(h5_file *f, const char *name, int64_t m, int64_t n, int64_t mb,
                           int64_t nb, int nprow, int npcol, int myrow, int mycol, int holds,
                           double *local, int64_t lld) {
  h5_quiet();
  cyc_layout L = {m, n, mb, nb, nprow, npcol, myrow, mycol, holds != 0, lld, {0}, {0}};
  SCL_CALL(cyc_layout_check(f, name, &L, local));
  if (!L.holds) return SCL_OK;
  hid_t dset = -1;
  SCL_CALL(cyc_open(f, name, &L, &dset));
  int64_t numel = cyc_numel(&L);
  double *packed = NULL;
  scl_err err = SCL_OK;
  if (numel > 0)
    err = scl_alloc((size_t)numel * sizeof *packed, "block-cyclic scratch piece", (void **)&packed);
  if (!err) err = cyc_transfer(f, name, dset, &L, packed, 0);
  if (!err && L.nprow == 1 && L.npcol == 1) { /* the whole matrix: checked here */
    const hsize_t dims[2] = {(hsize_t)m, (hsize_t)n};
    uint64_t sum = h5_sum_shape(2, dims) + (numel > 0 ? h5_sum_elems(packed, numel, 8, 0) : 0);
    err = h5_checksum_check(f, name, dset, sum);
  }
  if (!err && numel > 0) cyc_unpack(local, packed, L.row.nloc, L.col.nloc, lld);
  H5Dclose(dset);
  scl_free(packed);
  SCL_CALL(err);
  return SCL_OK;
}
