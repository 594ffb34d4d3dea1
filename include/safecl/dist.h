/* dist.h: the one place safecl talks to MPI (docs/conventions.md 2, 4), below io and linalg.
 *
 * A dist_comm owns a duplicate of the communicator it was made from, with MPI_ERRORS_RETURN set,
 * so a failing MPI call becomes SCL_ERR_MPI with MPI_Error_string's text and the name of the
 * operation instead of aborting the job from deep inside a library; that text is made in one
 * place, dist.c. Objects that communicate take a dist_comm as their first argument and keep their
 * own (dist_comm_dup): the trial runner's group, the methods (learn_context.comm), the group
 * ridge solver (linalg_group.h) and group HDF5 files (h5.h). dist_comm_self() is the group of
 * this process alone, which makes no MPI call at all (programs and tests without MPI_Init).
 *
 * This header does not include <mpi.h>, so that modules which only pass a dist_comm along (learn/)
 * stay free of MPI headers; making a dist_comm from an MPI communicator and reaching the raw
 * communicator (for BLACS and MPI-IO) are in dist_mpi.h.
 *
 * Three layers: communicators (create, dup, split, destroy); point-to-point byte messages with
 * blocking, allocating receives (the orchestrator's coordinator protocol is built on them); and
 * collectives over flat buffers (broadcast, allreduce, allgather, the collective status decision
 * dist_agree). Element counts are int64_t; buffers larger than MPI's int count are moved in
 * pieces. Receives block inside MPI: on an oversubscribed node set Open MPI's
 * mpi_yield_when_idle=1 (jobs/env.sh does), so that a waiting rank yields its core.
 *
 * Collective functions say so; "collective over c" means every rank of c calls them in the same
 * order. Errors in collectives are returned on the ranks where MPI reported them: callers that
 * must stay in lockstep combine statuses with dist_agree before the next collective. */
#ifndef SAFECL_DIST_H
#define SAFECL_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "safecl/core.h"

typedef struct dist_comm dist_comm;

#define DIST_ANY_SOURCE (-1)
#define DIST_ANY_TAG (-1)

typedef enum { DIST_SUM, DIST_MAX, DIST_MIN } dist_op;

/* ---------------------------------------------------------------------------------------- */
/* Library lifetime (called from main only)                                                  */

/* MPI_Init_thread with MPI_THREAD_FUNNELED (OpenBLAS threads never call MPI). */
SCL_NODISCARD scl_err dist_init(int *argc, char ***argv);
SCL_NODISCARD scl_err dist_finalize(void);
int dist_initialized(void); /* 1 between dist_init and dist_finalize */
/* MPI's library version (MPI_Get_library_version, allowed before MPI_Init), with a note when MPI
 * is not running in this process, or "unknown (...)"; for provenance records. Never fails. */
#define DIST_LIBRARY_VERSION_MAX 8320
void dist_library_version(char *buf, size_t size);

/* ---------------------------------------------------------------------------------------- */
/* Communicators                                                                              */

/* The group of this process alone (rank 0 of 1), usable without MPI: collectives copy or do
 * nothing, dist_agree returns the local status, point-to-point messages are SCL_ERR_ARG. Static;
 * never destroyed. */
const dist_comm *dist_comm_self(void);
/* Another duplicate of c (collective over c; a duplicate of dist_comm_self() is another
 * MPI-free group of one). */
SCL_NODISCARD scl_err dist_comm_dup(const dist_comm *c, dist_comm **out);
/* MPI_Comm_split (collective over c): ranks with the same color >= 0 form one communicator,
 * ordered by key; a rank with color < 0 gets *out = NULL. */
SCL_NODISCARD scl_err dist_comm_split(const dist_comm *c, int color, int key, dist_comm **out);
/* Frees the duplicate (collective over c). Accepts NULL and *c == NULL; sets *c to NULL. */
void dist_comm_destroy(dist_comm **c);
int dist_comm_rank(const dist_comm *c);
int dist_comm_size(const dist_comm *c);
/* 1 if c talks to MPI, 0 for dist_comm_self() and its duplicates. */
int dist_comm_is_mpi(const dist_comm *c);
/* *same = 1 if rank `root` of c runs on this rank's node (MPI_COMM_TYPE_SHARED); collective. */
SCL_NODISCARD scl_err dist_comm_shares_node(const dist_comm *c, int root, int *same);

/* ---------------------------------------------------------------------------------------- */
/* Point-to-point byte messages                                                               */

typedef struct dist_msg {
  void *data; /* len bytes plus a NUL (so text payloads are C strings); owned: dist_msg_free */
  size_t len;
  int source, tag;
} dist_msg;

/* Sends len bytes (blocking standard-mode send). len <= INT_MAX. */
SCL_NODISCARD scl_err dist_send(const dist_comm *c, int dest, int tag, const void *buf, size_t len);
/* Blocks until a message from `source` with `tag` (DIST_ANY_* for any) arrives and receives it
 * whole, whatever its length (matched probe, so no other receive can steal it). */
SCL_NODISCARD scl_err dist_recv(const dist_comm *c, int source, int tag, dist_msg *msg);
void dist_msg_free(dist_msg *msg);

/* ---------------------------------------------------------------------------------------- */
/* Collectives over flat buffers                                                              */

SCL_NODISCARD scl_err dist_barrier(const dist_comm *c);
/* A barrier that ranks passing sleep = 1 wait in asleep (polling every 0.2 ms) rather than
 * spinning inside MPI, so that a rank still computing has the node's cores. */
SCL_NODISCARD scl_err dist_barrier_sleep(const dist_comm *c, int sleep);
/* Broadcasts len bytes from root (collective over c; len equal on every rank). */
SCL_NODISCARD scl_err dist_bcast(const dist_comm *c, int root, void *buf, size_t len);
/* Broadcasts a byte buffer whose length only the root knows: the root passes *buf and *len;
 * other ranks get a new buffer (len bytes plus a NUL) they own and free with scl_free. */
SCL_NODISCARD scl_err dist_bcast_alloc(const dist_comm *c, int root, void **buf, size_t *len);
/* In-place element-wise reduction over all ranks (collective over c). */
SCL_NODISCARD scl_err dist_allreduce_i64(const dist_comm *c, int64_t *v, int64_t n, dist_op op);
SCL_NODISCARD scl_err dist_allreduce_f32(const dist_comm *c, float *v, int64_t n, dist_op op);
SCL_NODISCARD scl_err dist_allreduce_f64(const dist_comm *c, double *v, int64_t n, dist_op op);
/* recv[r*n .. r*n+n) = send of rank r (collective over c; n equal on every rank). */
SCL_NODISCARD scl_err dist_allgather_f32(const dist_comm *c, const float *send, int64_t n,
                                         float *recv);
SCL_NODISCARD scl_err dist_allgather_f64(const dist_comm *c, const double *send, int64_t n,
                                         double *recv);

/* Rows of unequal counts (collective over c): recv (sum(counts) x cols) = rank 0's counts[0]
 * rows, then rank 1's, ...; every rank passes the same counts. send may point at this rank's
 * place in recv (in place). Each rank's part and the displacements must fit MPI's int. */
SCL_NODISCARD scl_err dist_allgather_rows_f32(const dist_comm *c, const float *send,
                                              const int64_t *counts, int64_t cols, float *recv);
SCL_NODISCARD scl_err dist_allgather_rows_i32(const dist_comm *c, const int32_t *send,
                                              const int64_t *counts, int64_t cols, int32_t *recv);

/* The collective status decision (docs/conventions.md 3; collective over c): every rank passes its
 * local status and gets back the same verdict. OK if every rank was OK; otherwise the failing rank
 * with the largest code (lowest rank among equals) decides: that rank returns its own error
 * unchanged, the others raise the same code with that rank's root-cause message
 * forwarded, "rank R of P failed: <message>". An MPI failure of the reduction itself is
 * SCL_ERR_MPI. */
SCL_NODISCARD scl_err dist_agree(const dist_comm *c, scl_err local);
/* The same decision without messages, for paths that report nothing (an abort): returns the
 * largest code of any rank (SCL_OK if none failed; SCL_ERR_MPI, not raised, if MPI itself
 * failed) and, if who is not NULL, the lowest rank that has it. Raises nothing. It makes the same
 * collective calls as dist_agree, so some ranks may vote while the others agree. */
scl_err dist_vote(const dist_comm *c, scl_err local, int *who);

/* Aborts every process of c's job (MPI_Abort). For the top-level driver only (docs/conventions.md
 * 3). */
void dist_abort(const dist_comm *c, int code);

#endif /* SAFECL_DIST_H */
