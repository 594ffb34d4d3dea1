/* h5_group.c: HDF5 files written collectively by a group of MPI ranks (parallel HDF5, MPI-IO),
 * published like serial files: created under a temporary name, renamed into place on commit.
 *
 * The group is our own duplicate of the caller's dist_comm (dist.h, below io): a file that several
 * ranks close together must also be published or discarded together, so the few decisions that
 * keep the ranks in lockstep (the temporary name, each collective step's status, the final
 * verdict) are made here with dist's broadcasts and its status decision (dist_agree, which
 * forwards the failing rank's message; dist_vote when nothing is reported). The raw communicator
 * is only handed to HDF5's MPI-IO driver; io makes no MPI call of its own. Everything else stays
 * in the serial wrappers, which ask this file how to write (h5_write_whole, h5_dxpl_write) and to
 * agree on their status (h5_group_agree).
 *
 * Replicated data (what every rank holds identically: scalars, vectors, attributes) is written
 * once: rank 0 selects the whole dataset and the other ranks select nothing in one collective
 * transfer, which is also what filtered (gzip) datasets need in parallel HDF5. Attribute values
 * are taken from rank 0, so values that legitimately differ between ranks (hostname, creation
 * time) cannot make the ranks' metadata disagree. What this deliberately does not do: lock the
 * destination against other writers, or recover a temporary left by a killed group (only its
 * owner may remove it, as in publish.c). The trade-off of deciding every step collectively is
 * one small allreduce per dataset or attribute, negligible beside the file system. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5_internal.h"
#include "safecl/dist_mpi.h"
#include "safecl/publish.h"

int h5_file_is_group(const h5_file *f) { return f && f->comm != NULL; }

scl_err h5_group_agree(const h5_file *f, scl_err local) {
  if (!h5_file_is_group(f)) return local;
  SCL_CALL(dist_agree(f->comm, local));
  return SCL_OK;
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
  scl_err err = dist_bcast(f->comm, 0, value, len); /* on failure, the note names the file */
  SCL_CHECK(!err, err, "HDF5 file '%s': rank 0's %s did not reach every rank", f->path, what);
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
  if (f->rank != 0 && !(copy = malloc((size_t)len + 1)))
    err = SCL_ERROR(SCL_ERR_NOMEM, "%s from rank 0", what);
  SCL_CALL(h5_group_agree(f, err));
  err = h5_group_bcast(f, f->rank == 0 ? (void *)*value : copy, (size_t)len, what);
  if (err) {
    free(copy);
    return SCL_TRACE(err);
  }
  if (copy) {
    copy[len] = '\0';
    *value = copy;
    *owned = copy;
  }
  return SCL_OK;
}

int h5_group_size(const h5_file *f) { return h5_file_is_group(f) ? dist_comm_size(f->comm) : 1; }

scl_err h5_group_reduce_i64(const h5_file *f, int64_t *v, int n, int sum) {
  if (!h5_file_is_group(f) || n <= 0) return SCL_OK;
  SCL_CALL(dist_allreduce_i64(f->comm, v, n, sum ? DIST_SUM : DIST_MAX));
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
  SCL_CALL(dist_bcast(f->comm, 0, &len, sizeof len));
  if (len < 0) {
    if (f->rank == 0) return SCL_TRACE(err);
    return SCL_ERROR(SCL_ERR_IO, "HDF5 file '%s': rank 0 could not reserve a temporary name",
                     f->path);
  }
  if (f->rank != 0 && !(f->tmp_path = malloc((size_t)len + 1)))
    err = SCL_ERROR(SCL_ERR_NOMEM, "temporary file name for '%s'", f->path);
  SCL_CALL(h5_group_agree(f, err));
  SCL_CALL(dist_bcast(f->comm, 0, f->tmp_path, (size_t)len + 1));
  return SCL_OK;
}

/* Creates f->tmp_path with the MPI-IO driver on f->comm (collective). */
static scl_err h5_group_create_file(h5_file *f) {
  scl_err err = SCL_OK;
  hid_t fapl = h5_fapl(), fcpl = h5_whole_fcpl();
  if (fapl < 0 || fcpl < 0) {
    err = H5_FAIL(f, NULL, "H5Pcreate(file access/creation)");
  } else if (H5Pset_fapl_mpio(fapl, dist_comm_mpi(f->comm), MPI_INFO_NULL) < 0 ||
             H5Pset_coll_metadata_write(fapl, 1) < 0) {
    err = H5_FAIL(f, NULL, "H5Pset_fapl_mpio");
  } else if ((f->id = H5Fcreate(f->tmp_path, H5F_ACC_TRUNC, fcpl, fapl)) < 0) {
    err = H5_FAIL(f, NULL, "H5Fcreate (temporary file, MPI-IO)");
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (fcpl >= 0) H5Pclose(fcpl);
  return err;
}

/* Undoes a partly made group file: closes what is open, rank 0 removes the temporary, frees
 * the duplicate communicator (collective). */
static void h5_group_discard(h5_file *f) {
  if (f->id >= 0 && H5Fclose(f->id) < 0) H5Eclear2(H5E_DEFAULT);
  f->id = -1;
  if (f->rank == 0) io_publish_abort(f->tmp_path);
  dist_comm_destroy(&f->comm);
  h5_file_free(f);
}

scl_err h5_file_create_atomic_group(const char *path, const dist_comm *comm, h5_file **out) {
  *out = NULL;
  SCL_CHECK(path && path[0], SCL_ERR_ARG, "h5: empty file path");
  SCL_CHECK(comm && dist_comm_is_mpi(comm), SCL_ERR_ARG,
            "HDF5 file '%s': a group file needs an MPI communicator", path);
  h5_quiet();
  dist_comm *dup = NULL;
  SCL_CALL(dist_comm_dup(comm, &dup));
  h5_file *f = NULL;
  scl_err err = dist_agree(dup, h5_file_alloc(path, &f));
  if (err) {
    if (f) h5_file_free(f);
    dist_comm_destroy(&dup);
    return SCL_TRACE(err);
  }
  f->comm = dup;
  f->rank = dist_comm_rank(dup);
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
  return dist_vote(f->comm, local, NULL);
}

/* Every rank runs the same sequence of collective calls whatever happened before: the verdict
 * on `local`; a flush when publishing (MPI_File_sync on every rank, so that each rank's own
 * writes are durable, not only what rank 0's fsync can reach); the collective close; the
 * verdict on the close; then rank 0 alone renames or removes the temporary (every handle is
 * closed by then; it first writes the whole-file checksum, h5_whole.c) and a last verdict hands
 * its result to every rank. */
scl_err h5_group_finish(h5_file **pf, scl_err local, int publish) {
  h5_file *f = *pf;
  *pf = NULL;
  int report = publish;
  scl_err err = h5_group_verdict(f, local, report);
  if (!err && publish) err = h5_attrs_seal(f); /* collective, agreed */
  scl_err mine = SCL_OK;
  if (err || !publish) {
    /* Discarded: rank 0 empties the temporary first, so that the collective close's flush finds
     * space on a full disk; a flush failing on some ranks only leaves them in different
     * collectives inside H5Fclose (a hang), and a failed close leaves an id for HDF5's cleanup
     * at MPI_Finalize to crash on. The vote keeps the other ranks out of the close until then. */
    if (f->rank == 0 && truncate(f->tmp_path, 0) != 0) errno = 0;
    (void)dist_vote(f->comm, SCL_OK, NULL);
  }
  if (!err && publish && H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0)
    mine = report ? H5_FAIL(f, NULL, "H5Fflush") : SCL_ERR_HDF5;
  if (H5Fclose(f->id) < 0 && !mine) mine = report ? H5_FAIL(f, NULL, "H5Fclose") : SCL_ERR_HDF5;
  f->id = -1;
  if (!report) H5Eclear2(H5E_DEFAULT);
  scl_err closed = h5_group_verdict(f, mine, report);
  if (!err) err = closed;
  mine = SCL_OK;
  if (f->rank == 0) {
    if (!err && publish && !(mine = h5_whole_seal(f->tmp_path, f->path)) &&
        !(mine = h5_keep_previous_now(f)))
      mine = io_publish_commit(f->tmp_path, f->path);
    else
      io_publish_abort(f->tmp_path);
  }
  scl_err published = h5_group_verdict(f, mine, report);
  if (!err) err = published;
  dist_comm_destroy(&f->comm);
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
