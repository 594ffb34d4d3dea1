/* h5_group.c: HDF5 files written collectively by a group of MPI ranks (parallel HDF5, MPI-IO),
 * published like serial files: created under a temporary name, renamed into place on commit.
 *
 * This is the one io file that includes <mpi.h> (io otherwise depends on core only, DESIGN.md 5):
 * the MPI-IO file access list needs the communicator, and a file that several ranks close
 * together must also be published or discarded together, so the few decisions that keep the
 * ranks in lockstep (the temporary name, each collective step's status, the final verdict) are
 * made here with MPI_Bcast and MPI_Allreduce on our own duplicate of the group, set to
 * MPI_ERRORS_RETURN. Everything else stays in the serial wrappers, which ask this file how to
 * write (h5_write_whole, h5_dxpl_write) and to agree on their status (h5_group_agree).
 *
 * Replicated data (what every rank holds identically: scalars, vectors, attributes) is written
 * once: rank 0 selects the whole dataset and the other ranks select nothing in one collective
 * transfer, which is also what filtered (gzip) datasets need in parallel HDF5. Attribute values
 * are taken from rank 0, so values that legitimately differ between ranks (hostname, creation
 * time) cannot make the ranks' metadata disagree. What this deliberately does not do: lock the
 * destination against other writers, or recover a temporary left by a killed group (only its
 * owner may remove it, as in publish.c). The trade-off of deciding every step collectively is
 * one small allreduce per dataset or attribute, negligible beside the file system. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "h5_internal.h"
#include "safecl/publish.h"

int h5_file_is_group(const h5_file *f) { return f && f->comm != MPI_COMM_NULL; }

/* SCL_ERR_MPI with MPI's own description of rc, naming the file and the operation. */
static scl_err h5_mpi_fail(const char *path, const char *op, int rc) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
  return SCL_ERROR(SCL_ERR_MPI, "HDF5 file '%s': %s failed: %s", path, op, msg);
}

/* The verdict on `local` over comm without raising anything: *code is the largest code of any
 * rank (0 if all are OK) and *who the lowest rank that has it. Returns MPI's status. */
static int h5_group_vote(MPI_Comm comm, int rank, scl_err local, int *code, int *who) {
  int in[2] = {(int)local, rank}, out[2] = {0, 0};
  int rc = MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MAXLOC, comm);
  *code = rc == MPI_SUCCESS ? out[0] : (int)SCL_ERR_MPI;
  *who = rc == MPI_SUCCESS ? out[1] : rank;
  return rc;
}

/* The vote, with a message: the rank that decided keeps its own error (message and traceback);
 * the others raise the same code naming that rank. */
static scl_err h5_agree_on(MPI_Comm comm, int rank, const char *path, scl_err local) {
  int code = 0, who = 0;
  int rc = h5_group_vote(comm, rank, local, &code, &who);
  if (rc != MPI_SUCCESS) return h5_mpi_fail(path, "MPI_Allreduce (status of the group)", rc);
  if (code == SCL_OK) return SCL_OK;
  if (who == rank) return SCL_TRACE(local);
  return SCL_ERROR(code, "HDF5 file '%s': rank %d of the group failed or aborted (%s)", path, who,
                   scl_error_name(code));
}

scl_err h5_group_agree(const h5_file *f, scl_err local) {
  if (!h5_file_is_group(f)) return local;
  return h5_agree_on(f->comm, f->rank, f->path, local);
}

hid_t h5_dxpl_write(const h5_file *f) {
  if (!h5_file_is_group(f)) return H5P_DEFAULT;
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  if (dxpl >= 0 && H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
    H5Pclose(dxpl);
    return -1;
  }
  return dxpl;
}

void h5_dxpl_close(hid_t dxpl) {
  if (dxpl >= 0 && dxpl != H5P_DEFAULT) H5Pclose(dxpl);
}

herr_t h5_write_whole(const h5_file *f, hid_t dset, hid_t mem_type, const void *data) {
  if (!h5_file_is_group(f)) return H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  herr_t rc = -1;
  hid_t fspace = H5Dget_space(dset), mspace = -1, dxpl = h5_dxpl_write(f);
  if (fspace >= 0 && dxpl >= 0 && (mspace = H5Scopy(fspace)) >= 0) {
    rc = 0;
    if (f->rank != 0 && (H5Sselect_none(fspace) < 0 || H5Sselect_none(mspace) < 0)) rc = -1;
    if (rc == 0) rc = H5Dwrite(dset, mem_type, mspace, fspace, dxpl, data);
  }
  if (mspace >= 0) H5Sclose(mspace);
  if (fspace >= 0) H5Sclose(fspace);
  h5_dxpl_close(dxpl);
  return rc;
}

scl_err h5_group_bcast(const h5_file *f, void *value, size_t len, const char *what) {
  if (!h5_file_is_group(f) || len == 0) return SCL_OK;
  SCL_CHECK(len <= (size_t)INT32_MAX, SCL_ERR_ARG,
            "HDF5 file '%s', %s: %zu bytes is too large to broadcast", f->path, what, len);
  int rc = MPI_Bcast(value, (int)len, MPI_BYTE, 0, f->comm);
  if (rc != MPI_SUCCESS) return h5_mpi_fail(f->path, "MPI_Bcast (rank 0's value)", rc);
  return SCL_OK;
}

scl_err h5_group_bcast_str(const h5_file *f, const char **value, char **owned, const char *what) {
  *owned = NULL;
  if (!h5_file_is_group(f)) return SCL_OK;
  int64_t len = f->rank == 0 ? (int64_t)strlen(*value) : 0;
  SCL_CALL(h5_group_bcast(f, &len, sizeof len, what));
  char *copy = NULL;
  /* Every rank must reach the second broadcast, so an allocation failure is agreed on first. */
  scl_err err = SCL_OK;
  if (f->rank != 0) err = scl_alloc((size_t)len + 1, "attribute value from rank 0", (void **)&copy);
  SCL_CALL(h5_group_agree(f, err));
  err = h5_group_bcast(f, f->rank == 0 ? (void *)*value : copy, (size_t)len, what);
  if (err) {
    scl_free(copy);
    return SCL_TRACE(err);
  }
  if (copy) {
    copy[len] = '\0';
    *value = copy;
    *owned = copy;
  }
  return SCL_OK;
}

int h5_group_size(const h5_file *f) {
  int size = 1;
  if (h5_file_is_group(f) && MPI_Comm_size(f->comm, &size) != MPI_SUCCESS) size = 1;
  return size;
}

scl_err h5_group_reduce_i64(const h5_file *f, int64_t *v, int n, int sum) {
  if (!h5_file_is_group(f) || n <= 0) return SCL_OK;
  int rc = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, sum ? MPI_SUM : MPI_MAX, f->comm);
  if (rc != MPI_SUCCESS) return h5_mpi_fail(f->path, "MPI_Allreduce (layout check)", rc);
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Creating                                                                                  */

/* Rank 0 reserves the temporary name (its pid: one name for the whole group) and broadcasts it;
 * every rank gets its own copy in f->tmp_path. Collective; the same status on every rank. */
static scl_err h5_group_tmp_name(h5_file *f) {
  scl_err err = SCL_OK;
  int64_t len = -1;
  if (f->rank == 0) {
    err = io_publish_begin(f->path, &f->tmp_path, NULL);
    if (!err) len = (int64_t)strlen(f->tmp_path);
  }
  int rc = MPI_Bcast(&len, 1, MPI_INT64_T, 0, f->comm);
  if (rc != MPI_SUCCESS) return h5_mpi_fail(f->path, "MPI_Bcast (temporary name)", rc);
  if (len < 0) {
    if (f->rank == 0) return SCL_TRACE(err);
    return SCL_ERROR(SCL_ERR_IO, "HDF5 file '%s': rank 0 could not reserve a temporary name",
                     f->path);
  }
  if (f->rank != 0) err = scl_alloc((size_t)len + 1, "temporary file name", (void **)&f->tmp_path);
  SCL_CALL(h5_group_agree(f, err));
  rc = MPI_Bcast(f->tmp_path, (int)len + 1, MPI_CHAR, 0, f->comm);
  if (rc != MPI_SUCCESS) return h5_mpi_fail(f->path, "MPI_Bcast (temporary name)", rc);
  return SCL_OK;
}

/* Creates f->tmp_path with the MPI-IO driver on f->comm (collective). */
static scl_err h5_group_create_file(h5_file *f) {
  scl_err err = SCL_OK;
  hid_t fapl = h5_fapl();
  if (fapl < 0) {
    err = H5_FAIL(f, NULL, "H5Pcreate(file access)");
  } else if (H5Pset_fapl_mpio(fapl, f->comm, MPI_INFO_NULL) < 0 ||
             H5Pset_coll_metadata_write(fapl, 1) < 0) {
    err = H5_FAIL(f, NULL, "H5Pset_fapl_mpio");
  } else if ((f->id = H5Fcreate(f->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0) {
    err = H5_FAIL(f, NULL, "H5Fcreate (temporary file, MPI-IO)");
  }
  if (fapl >= 0) H5Pclose(fapl);
  return err;
}

/* Undoes a partly made group file: closes what is open, rank 0 removes the temporary, frees
 * the duplicate communicator (collective). */
static void h5_group_discard(h5_file *f) {
  if (f->id >= 0 && H5Fclose(f->id) < 0) H5Eclear2(H5E_DEFAULT);
  f->id = -1;
  if (f->rank == 0) io_publish_abort(f->tmp_path);
  MPI_Comm_free(&f->comm);
  h5_file_free(f);
}

scl_err h5_file_create_atomic_group(const char *path, MPI_Comm comm, h5_file **out) {
  *out = NULL;
  SCL_CHECK(path && path[0], SCL_ERR_ARG, "h5: empty file path");
  SCL_CHECK(comm != MPI_COMM_NULL, SCL_ERR_ARG, "HDF5 file '%s': MPI_COMM_NULL for a group file",
            path);
  h5_quiet();
  MPI_Comm dup = MPI_COMM_NULL;
  int rc = MPI_Comm_dup(comm, &dup);
  if (rc != MPI_SUCCESS) return h5_mpi_fail(path, "MPI_Comm_dup", rc);
  int rank = 0;
  if ((rc = MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN)) != MPI_SUCCESS ||
      (rc = MPI_Comm_rank(dup, &rank)) != MPI_SUCCESS) {
    MPI_Comm_free(&dup);
    return h5_mpi_fail(path, "MPI_Comm_set_errhandler", rc);
  }
  h5_file *f = NULL;
  scl_err err = h5_agree_on(dup, rank, path, h5_file_alloc(path, &f));
  if (err) {
    if (f) h5_file_free(f);
    MPI_Comm_free(&dup);
    return SCL_TRACE(err);
  }
  f->comm = dup;
  f->rank = rank;
  err = h5_group_tmp_name(f);
  if (!err) err = h5_group_agree(f, h5_group_create_file(f));
  if (err) {
    h5_group_discard(f);
    return SCL_TRACE(err);
  }
  f->writable = 1;
  *out = f;
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Committing and aborting                                                                   */

/* The agreed status, raising messages only if `report` (an abort reports nothing). */
static scl_err h5_group_verdict(const h5_file *f, scl_err local, int report) {
  if (report) return h5_group_agree(f, local);
  int code = 0, who = 0;
  return h5_group_vote(f->comm, f->rank, local, &code, &who) == MPI_SUCCESS ? code : SCL_ERR_MPI;
}

/* Every rank runs the same sequence of collective calls whatever happened before: the verdict
 * on `local`; a flush when publishing (MPI_File_sync on every rank, so that each rank's own
 * writes are durable, not only what rank 0's fsync can reach); the collective close; the
 * verdict on the close; then rank 0 alone renames or removes the temporary (every handle is
 * closed by then) and a last verdict hands its result to every rank. */
scl_err h5_group_finish(h5_file **pf, scl_err local, int publish) {
  h5_file *f = *pf;
  *pf = NULL;
  int report = publish;
  scl_err err = h5_group_verdict(f, local, report);
  scl_err mine = SCL_OK;
  if (!err && publish && H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0)
    mine = report ? H5_FAIL(f, NULL, "H5Fflush") : SCL_ERR_HDF5;
  if (H5Fclose(f->id) < 0 && !mine) mine = report ? H5_FAIL(f, NULL, "H5Fclose") : SCL_ERR_HDF5;
  f->id = -1;
  if (!report) H5Eclear2(H5E_DEFAULT);
  scl_err closed = h5_group_verdict(f, mine, report);
  if (!err) err = closed;
  mine = SCL_OK;
  if (f->rank == 0) {
    if (!err && publish)
      mine = io_publish_commit(f->tmp_path, f->path);
    else
      io_publish_abort(f->tmp_path);
  }
  scl_err published = h5_group_verdict(f, mine, report);
  if (!err) err = published;
  MPI_Comm_free(&f->comm);
  h5_file_free(f);
  if (err && report) return SCL_TRACE(err);
  return err;
}

scl_err h5_file_commit_group(h5_file **pf, scl_err local) {
  if (!pf || !*pf) return SCL_ERROR(SCL_ERR_ARG, "h5_file_commit_group: NULL file");
  if (!h5_file_is_group(*pf)) {
    if (local == SCL_OK) {
      SCL_CALL(h5_file_commit(pf));
      return SCL_OK;
    }
    h5_file_abort(pf);
    return SCL_TRACE(local);
  }
  if (!(*pf)->writable) return SCL_ERROR(SCL_ERR_ARG, "h5_file_commit_group: read-only file");
  SCL_CALL(h5_group_finish(pf, local, 1));
  return SCL_OK;
}
