/* dist.c: MPI wrapped once: communicators with MPI_ERRORS_RETURN, byte messages, collectives.
 *
 * Every MPI call goes through DIST_MPI (or MPI_FAILED for calls that clean up first), which turns
 * a non-success return into SCL_ERR_MPI with the operation's name and MPI_Error_string: the one
 * place in safecl where MPI's error codes become text. The group of one process
 * (dist_comm_self) has MPI_COMM_NULL and is served here without MPI, so callers never branch on
 * it. Communicators are always duplicates owned by a
 * dist_comm, so safecl's traffic never mixes with a caller's or a library's on the same context.
 * What this file deliberately does not do: non-blocking or polling receives. A coordinator that
 * waits inside MPI_Mprobe costs no measurable CPU with Open MPI's mpi_yield_when_idle=1, while a
 * hand-written Iprobe/sleep loop trades latency for the same thing; the blocking path is simpler.
 * Counts above INT_MAX elements are sent in pieces so that callers can use int64_t throughout. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "safecl/dist_mpi.h"

struct dist_comm {
  MPI_Comm comm; /* MPI_COMM_NULL: this process alone, no MPI */
  int rank, size;
};

static const dist_comm self_comm = {MPI_COMM_NULL, 0, 1};

static int is_self(const dist_comm *c) { return c->comm == MPI_COMM_NULL; }

const dist_comm *dist_comm_self(void) { return &self_comm; }

static scl_err mpi_failed(int rc, const char *what, const char *file, int line, const char *func) {
  char text[MPI_MAX_ERROR_STRING + 1] = "";
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", rc);
  return scl_error_raise(SCL_ERR_MPI, file, line, func, "%s failed: %s", what, text);
}

/* SCL_ERR_MPI raised at the caller's line, for MPI calls that must clean up before returning. */
#define MPI_FAILED(rc, what) mpi_failed((rc), (what), __FILE__, __LINE__, __func__)

/* Calls an MPI function; on failure raises SCL_ERR_MPI naming `what` and returns it. */
#define DIST_MPI(call, what)                                          \
  do {                                                                \
    int dist_rc_ = (call);                                            \
    if (dist_rc_ != MPI_SUCCESS) return MPI_FAILED(dist_rc_, (what)); \
  } while (0)

/* Elements moved per MPI call, so that int counts never overflow. */
#define DIST_CHUNK ((int64_t)1 << 30)

scl_err dist_init(int *argc, char ***argv) {
  int provided = 0;
  DIST_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_FUNNELED)
    SCL_WARN("MPI provides thread level %d < MPI_THREAD_FUNNELED; continuing", provided);
  return SCL_OK;
}

scl_err dist_finalize(void) {
  DIST_MPI(MPI_Finalize(), "MPI_Finalize");
  return SCL_OK;
}

int dist_initialized(void) {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

_Static_assert(DIST_LIBRARY_VERSION_MAX >= MPI_MAX_LIBRARY_VERSION_STRING + 64,
               "DIST_LIBRARY_VERSION_MAX holds MPI's version and the note");

void dist_library_version(char *buf, size_t size) {
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(lib, &len) != MPI_SUCCESS || len <= 0) {
    snprintf(buf, size, "unknown (MPI_Get_library_version failed)");
    return;
  }
  lib[len < MPI_MAX_LIBRARY_VERSION_STRING ? len : MPI_MAX_LIBRARY_VERSION_STRING - 1] = '\0';
  while (len > 0 && (lib[len - 1] == '\n' || lib[len - 1] == '\0')) lib[--len] = '\0';
  snprintf(buf, size, "%s%s", lib,
           dist_initialized() ? "" : " (MPI not initialised in the writing process)");
}

static scl_err wrap(MPI_Comm dup, dist_comm **out) {
  *out = NULL;
  DIST_MPI(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  dist_comm *c = calloc(1, sizeof *c);
  if (!c) {
    MPI_Comm_free(&dup);
    return SCL_ERROR(SCL_ERR_NOMEM, "communicator");
  }
  c->comm = dup;
  MPI_Comm_rank(dup, &c->rank);
  MPI_Comm_size(dup, &c->size);
  *out = c;
  return SCL_OK;
}

scl_err dist_comm_create(MPI_Comm comm, dist_comm **out) {
  *out = NULL;
  SCL_CHECK(dist_initialized(), SCL_ERR_MPI,
            "MPI is not initialised (this command must call dist_init)");
  /* The parent's handler is used by MPI_Comm_dup itself; make it return too. */
  DIST_MPI(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  MPI_Comm dup = MPI_COMM_NULL;
  DIST_MPI(MPI_Comm_dup(comm, &dup), "MPI_Comm_dup");
  SCL_CALL(wrap(dup, out));
  return SCL_OK;
}

scl_err dist_comm_dup(const dist_comm *c, dist_comm **out) {
  if (is_self(c)) {
    *out = malloc(sizeof **out);
    SCL_CHECK(*out, SCL_ERR_NOMEM, "communicator");
    **out = self_comm;
    return SCL_OK;
  }
  SCL_CALL(dist_comm_create(c->comm, out));
  return SCL_OK;
}

scl_err dist_comm_split(const dist_comm *c, int color, int key, dist_comm **out) {
  *out = NULL;
  if (is_self(c)) {
    if (color >= 0) SCL_CALL(dist_comm_dup(c, out));
    return SCL_OK;
  }
  MPI_Comm part = MPI_COMM_NULL;
  DIST_MPI(MPI_Comm_split(c->comm, color < 0 ? MPI_UNDEFINED : color, key, &part),
           "MPI_Comm_split");
  if (part == MPI_COMM_NULL) return SCL_OK;
  SCL_CALL(wrap(part, out));
  return SCL_OK;
}

void dist_comm_destroy(dist_comm **c) {
  if (!c || !*c) return;
  if (*c != &self_comm) {
    if (!is_self(*c) && dist_initialized()) MPI_Comm_free(&(*c)->comm);
    scl_free(*c);
  }
  *c = NULL;
}

int dist_comm_rank(const dist_comm *c) { return c->rank; }
int dist_comm_size(const dist_comm *c) { return c->size; }
int dist_comm_is_mpi(const dist_comm *c) { return !is_self(c); }
MPI_Comm dist_comm_mpi(const dist_comm *c) { return c->comm; }

scl_err dist_comm_shares_node(const dist_comm *c, int root, int *same) {
  *same = 1;
  if (is_self(c)) return SCL_OK;
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Group gg = MPI_GROUP_NULL, ng = MPI_GROUP_NULL;
  int translated = MPI_UNDEFINED;
  DIST_MPI(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
           "MPI_Comm_split_type");
  int rc = MPI_Comm_group(c->comm, &gg);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_group(node, &ng);
  if (rc == MPI_SUCCESS) rc = MPI_Group_translate_ranks(gg, 1, &root, ng, &translated);
  if (gg != MPI_GROUP_NULL) MPI_Group_free(&gg);
  if (ng != MPI_GROUP_NULL) MPI_Group_free(&ng);
  MPI_Comm_free(&node);
  if (rc != MPI_SUCCESS) return MPI_FAILED(rc, "MPI_Group_translate_ranks");
  *same = translated != MPI_UNDEFINED;
  return SCL_OK;
}

/* Point-to-point traffic needs a peer, which the group of one does not have. */
static scl_err no_peer(const dist_comm *c, const char *what) {
  SCL_CHECK(!is_self(c), SCL_ERR_ARG, "%s on the group of one process (no MPI)", what);
  return SCL_OK;
}

scl_err dist_send(const dist_comm *c, int dest, int tag, const void *buf, size_t len) {
  SCL_CALL(no_peer(c, "dist_send"));
  SCL_CHECK(len <= INT_MAX, SCL_ERR_ARG, "message of %zu bytes to rank %d is larger than %d", len,
            dest, INT_MAX);
  DIST_MPI(MPI_Send(buf, (int)len, MPI_BYTE, dest, tag, c->comm), "MPI_Send");
  return SCL_OK;
}

scl_err dist_recv(const dist_comm *c, int source, int tag, dist_msg *msg) {
  memset(msg, 0, sizeof *msg);
  SCL_CALL(no_peer(c, "dist_recv"));
  MPI_Message handle;
  MPI_Status st;
  DIST_MPI(MPI_Mprobe(source < 0 ? MPI_ANY_SOURCE : source, tag < 0 ? MPI_ANY_TAG : tag, c->comm,
                      &handle, &st),
           "MPI_Mprobe");
  int count = 0;
  DIST_MPI(MPI_Get_count(&st, MPI_BYTE, &count), "MPI_Get_count");
  char *data = NULL;
  SCL_CALL(scl_alloc((size_t)count + 1, "received message", (void **)&data));
  int rc = MPI_Mrecv(data, count, MPI_BYTE, &handle, &st);
  if (rc != MPI_SUCCESS) {
    scl_free(data);
    return MPI_FAILED(rc, "MPI_Mrecv");
  }
  data[count] = '\0';
  msg->data = data;
  msg->len = (size_t)count;
  msg->source = st.MPI_SOURCE;
  msg->tag = st.MPI_TAG;
  return SCL_OK;
}

void dist_msg_free(dist_msg *msg) {
  if (!msg) return;
  scl_free(msg->data);
  memset(msg, 0, sizeof *msg);
}

scl_err dist_barrier(const dist_comm *c) {
  if (is_self(c)) return SCL_OK;
  DIST_MPI(MPI_Barrier(c->comm), "MPI_Barrier");
  return SCL_OK;
}

scl_err dist_barrier_sleep(const dist_comm *c, int sleep) {
  if (is_self(c)) return SCL_OK;
  MPI_Request req;
  int done = 0;
  DIST_MPI(MPI_Ibarrier(c->comm, &req), "MPI_Ibarrier");
  const struct timespec nap = {0, 200000};
  while (!done) {
    DIST_MPI(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (!done && sleep) nanosleep(&nap, NULL);
  }
  return SCL_OK;
}

scl_err dist_bcast(const dist_comm *c, int root, void *buf, size_t len) {
  if (is_self(c)) return SCL_OK;
  for (size_t off = 0; off < len; off += (size_t)DIST_CHUNK) {
    size_t n = len - off < (size_t)DIST_CHUNK ? len - off : (size_t)DIST_CHUNK;
    DIST_MPI(MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, c->comm), "MPI_Bcast");
  }
  return SCL_OK;
}

scl_err dist_bcast_alloc(const dist_comm *c, int root, void **buf, size_t *len) {
  if (is_self(c)) return SCL_OK; /* the root's buffer is already everywhere */
  int64_t n = c->rank == root ? (int64_t)*len : 0;
  DIST_MPI(MPI_Bcast(&n, 1, MPI_INT64_T, root, c->comm), "MPI_Bcast (length)");
  if (c->rank != root) {
    *buf = NULL;
    *len = (size_t)n;
    SCL_CALL(scl_alloc((size_t)n + 1, "broadcast buffer", buf));
    ((char *)*buf)[n] = '\0';
  }
  SCL_CALL(dist_bcast(c, root, *buf, (size_t)n));
  return SCL_OK;
}

static MPI_Op mpi_op(dist_op op) {
  return op == DIST_SUM ? MPI_SUM : op == DIST_MAX ? MPI_MAX : MPI_MIN;
}

static scl_err allreduce(const dist_comm *c, void *v, int64_t n, size_t elem, MPI_Datatype type,
                         dist_op op) {
  if (is_self(c)) return SCL_OK;
  for (int64_t off = 0; off < n; off += DIST_CHUNK) {
    int64_t k = n - off < DIST_CHUNK ? n - off : DIST_CHUNK;
    DIST_MPI(MPI_Allreduce(MPI_IN_PLACE, (char *)v + (size_t)off * elem, (int)k, type, mpi_op(op),
                           c->comm),
             "MPI_Allreduce");
  }
  return SCL_OK;
}

scl_err dist_allreduce_i64(const dist_comm *c, int64_t *v, int64_t n, dist_op op) {
  SCL_CALL(allreduce(c, v, n, sizeof *v, MPI_INT64_T, op));
  return SCL_OK;
}

scl_err dist_allreduce_f32(const dist_comm *c, float *v, int64_t n, dist_op op) {
  SCL_CALL(allreduce(c, v, n, sizeof *v, MPI_FLOAT, op));
  return SCL_OK;
}

scl_err dist_allreduce_f64(const dist_comm *c, double *v, int64_t n, dist_op op) {
  SCL_CALL(allreduce(c, v, n, sizeof *v, MPI_DOUBLE, op));
  return SCL_OK;
}

/* Allgather in pieces of at most DIST_CHUNK elements per rank: piece p of every rank's send
 * buffer lands at the same offset of that rank's slot in recv. */
static scl_err allgather(const dist_comm *c, const void *send, int64_t n, void *recv, size_t elem,
                         MPI_Datatype type) {
  if (is_self(c)) {
    if (send != recv) memmove(recv, send, (size_t)n * elem);
    return SCL_OK;
  }
  if (n <= DIST_CHUNK) {
    DIST_MPI(MPI_Allgather(send, (int)n, type, recv, (int)n, type, c->comm), "MPI_Allgather");
    return SCL_OK;
  }
  MPI_Datatype slot;
  for (int64_t off = 0; off < n; off += DIST_CHUNK) {
    int64_t k = n - off < DIST_CHUNK ? n - off : DIST_CHUNK;
    /* k elements per rank, ranks n elements apart in recv */
    MPI_Datatype strided;
    DIST_MPI(MPI_Type_contiguous((int)k, type, &strided), "MPI_Type_contiguous");
    DIST_MPI(MPI_Type_create_resized(strided, 0, (MPI_Aint)((size_t)n * elem), &slot),
             "MPI_Type_create_resized");
    MPI_Type_free(&strided);
    DIST_MPI(MPI_Type_commit(&slot), "MPI_Type_commit");
    int rc = MPI_Allgather((const char *)send + (size_t)off * elem, (int)k, type,
                           (char *)recv + (size_t)off * elem, 1, slot, c->comm);
    MPI_Type_free(&slot);
    if (rc != MPI_SUCCESS) return MPI_FAILED(rc, "MPI_Allgather");
  }
  return SCL_OK;
}

scl_err dist_allgather_f32(const dist_comm *c, const float *send, int64_t n, float *recv) {
  SCL_CALL(allgather(c, send, n, recv, sizeof *send, MPI_FLOAT));
  return SCL_OK;
}

scl_err dist_allgather_f64(const dist_comm *c, const double *send, int64_t n, double *recv) {
  SCL_CALL(allgather(c, send, n, recv, sizeof *send, MPI_DOUBLE));
  return SCL_OK;
}

/* Counts and displacements (in elements) of a gather of rows: rank r sends counts[r] * cols. */
static scl_err gatherv_layout(const dist_comm *c, const int64_t *counts, int64_t cols, int **cnt,
                              int **displ) {
  SCL_CALL(scl_alloc((size_t)c->size * sizeof(int), "gather counts", (void **)cnt));
  SCL_CALL(scl_alloc((size_t)c->size * sizeof(int), "gather displacements", (void **)displ));
  int64_t off = 0;
  for (int r = 0; r < c->size; r++) {
    SCL_CHECK(counts[r] * cols <= INT_MAX && off <= INT_MAX, SCL_ERR_ARG,
              "allgather of %lld x %lld elements exceeds MPI's int count", (long long)counts[r],
              (long long)cols);
    (*cnt)[r] = (int)(counts[r] * cols);
    (*displ)[r] = (int)off;
    off += counts[r] * cols;
  }
  return SCL_OK;
}

static scl_err allgather_rows(const dist_comm *c, const void *send, const int64_t *counts,
                              int64_t cols, void *recv, size_t elem, MPI_Datatype type) {
  if (is_self(c)) {
    if (send != recv) memmove(recv, send, (size_t)(counts[0] * cols) * elem);
    return SCL_OK;
  }
  int *cnt = NULL, *displ = NULL;
  scl_err err = gatherv_layout(c, counts, cols, &cnt, &displ);
  if (!err) {
    const char *mine = (const char *)recv + (size_t)displ[c->rank] * elem;
    const void *src = send == (const void *)mine ? MPI_IN_PLACE : send;
    int rc = MPI_Allgatherv(src, cnt[c->rank], type, recv, cnt, displ, type, c->comm);
    if (rc != MPI_SUCCESS) err = MPI_FAILED(rc, "MPI_Allgatherv");
  }
  scl_free(cnt);
  scl_free(displ);
  return err;
}

scl_err dist_allgather_rows_f32(const dist_comm *c, const float *send, const int64_t *counts,
                                int64_t cols, float *recv) {
  SCL_CALL(allgather_rows(c, send, counts, cols, recv, sizeof *send, MPI_FLOAT));
  return SCL_OK;
}

scl_err dist_allgather_rows_i32(const dist_comm *c, const int32_t *send, const int64_t *counts,
                                int64_t cols, int32_t *recv) {
  SCL_CALL(allgather_rows(c, send, counts, cols, recv, sizeof *send, MPI_INT32_T));
  return SCL_OK;
}

/* The decision behind dist_vote and dist_agree, one sequence of collectives for both so that
 * ranks may mix them in one decision: the verdict (largest code, lowest rank among equals) into
 * out, then, if it is a failure, the deciding rank's root-cause message into msg on every rank.
 * Returns MPI's status; raises nothing. */
static int decide(const dist_comm *c, scl_err local, int out[2], char msg[SCL_ERROR_MESSAGE_MAX]) {
  int in[2] = {(int)local, c->rank};
  out[0] = (int)local;
  out[1] = c->rank;
  msg[0] = '\0';
  if (is_self(c)) return MPI_SUCCESS;
  int rc = MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MAXLOC, c->comm);
  if (rc != MPI_SUCCESS || out[0] == SCL_OK) return rc;
  if (out[1] == c->rank) snprintf(msg, SCL_ERROR_MESSAGE_MAX, "%s", scl_error_message());
  rc = MPI_Bcast(msg, SCL_ERROR_MESSAGE_MAX, MPI_CHAR, out[1], c->comm);
  msg[SCL_ERROR_MESSAGE_MAX - 1] = '\0';
  return rc;
}

scl_err dist_vote(const dist_comm *c, scl_err local, int *who) {
  int out[2];
  char msg[SCL_ERROR_MESSAGE_MAX];
  int rc = decide(c, local, out, msg);
  if (who) *who = rc == MPI_SUCCESS ? out[1] : c->rank;
  return rc == MPI_SUCCESS ? (scl_err)out[0] : SCL_ERR_MPI;
}

scl_err dist_agree(const dist_comm *c, scl_err local) {
  if (is_self(c)) return local;
  int out[2];
  char msg[SCL_ERROR_MESSAGE_MAX];
  int rc = decide(c, local, out, msg);
  if (rc != MPI_SUCCESS) return MPI_FAILED(rc, "MPI_Allreduce or MPI_Bcast (status)");
  if (out[0] == SCL_OK) return SCL_OK;
  if (out[1] == c->rank) return local;
  /* the deciding rank's root-cause message was forwarded, so every rank reports it */
  return SCL_ERROR(out[0], "rank %d of %d failed: %s", out[1], c->size,
                   msg[0] ? msg : scl_error_name(out[0]));
}

void dist_abort(const dist_comm *c, int code) {
  if (dist_initialized()) MPI_Abort(c && !is_self(c) ? c->comm : MPI_COMM_SELF, code);
}
