/* test_dist.c: the MPI layer (dist.h) at any number of ranks (ctest runs 2, 3, 4 and 5).
 *
 * Checks: duplicated communicators have the parent's ranks; split puts ranks of one color
 * together in key order and gives color < 0 no communicator; messages of any length (0 bytes to
 * 1 MB) arrive whole from any source with their source and tag; a broadcast whose length only
 * the root knows arrives everywhere; allreduce (sum, max, min) and allgather give exact results;
 * dist_agree gives every rank the same verdict, naming the failing rank on the others and
 * forwarding its message word for word (the largest code decides, the lowest rank among equals);
 * dist_vote reaches the same verdict without raising and may be mixed with dist_agree in one
 * decision; dist_comm_self() works without MPI; an MPI error (a send to a rank that does not
 * exist) is returned as SCL_ERR_MPI with MPI's text. */
#include <stdint.h>

#include "orch/orch_test.h"
#include "safecl/dist_mpi.h"

static void test_split(const dist_comm *world) {
  int r = dist_comm_rank(world), p = dist_comm_size(world);
  dist_comm *dup = NULL, *part = NULL;
  CHECK_OK(dist_comm_dup(world, &dup));
  CHECK(dup && dist_comm_rank(dup) == r && dist_comm_size(dup) == p, "dup keeps ranks");
  /* rank 0 alone out (as the coordinator), the rest in pairs, reversed order inside a pair */
  int color = r == 0 ? -1 : (r - 1) / 2;
  CHECK_OK(dist_comm_split(world, color, -r, &part));
  if (r == 0) {
    CHECK(part == NULL, "color < 0 gets no communicator");
  } else {
    int first = 1 + 2 * color, last = first + 1 < p ? first + 1 : first;
    CHECK(part && dist_comm_size(part) == last - first + 1, "pair size");
    CHECK(part && dist_comm_rank(part) == last - r, "rank %d has rank %d in its pair", r,
          part ? dist_comm_rank(part) : -1);
  }
  dist_comm_destroy(&part);
  dist_comm_destroy(&dup);
  CHECK(dup == NULL, "destroy sets NULL");
}

static void test_messages(const dist_comm *c) {
  int r = dist_comm_rank(c), p = dist_comm_size(c);
  const size_t sizes[3] = {0, 7, 1 << 20};
  if (r != 0) {
    for (int k = 0; k < 3; k++) {
      size_t n = sizes[k] + (size_t)r;
      char *buf = malloc(n + 1);
      for (size_t i = 0; i < n; i++) buf[i] = (char)('a' + (i + (size_t)r) % 26);
      CHECK_OK(dist_send(c, 0, 100 + k, buf, n));
      free(buf);
    }
    return;
  }
  int got[64] = {0};
  for (int m = 0; m < 3 * (p - 1); m++) {
    dist_msg msg;
    CHECK_OK(dist_recv(c, DIST_ANY_SOURCE, DIST_ANY_TAG, &msg));
    int k = msg.tag - 100, s = msg.source;
    CHECK(k >= 0 && k < 3 && s > 0 && s < p, "tag %d from %d", msg.tag, s);
    if (k < 0 || k >= 3 || s <= 0 || s >= p) continue;
    CHECK(msg.len == sizes[k] + (size_t)s, "length %zu from rank %d", msg.len, s);
    int ok = ((char *)msg.data)[msg.len] == '\0';
    for (size_t i = 0; i < msg.len; i++)
      ok &= ((char *)msg.data)[i] == (char)('a' + (i + (size_t)s) % 26);
    CHECK(ok, "contents from rank %d tag %d", s, msg.tag);
    got[s]++;
    dist_msg_free(&msg);
  }
  for (int s = 1; s < p; s++) CHECK(got[s] == 3, "3 messages from rank %d", s);
}

static void test_collectives(const dist_comm *c) {
  int r = dist_comm_rank(c), p = dist_comm_size(c);
  char *text = NULL;
  size_t len = 0;
  const char *msg = "variable-length broadcast";
  if (r == 1 % p) {
    text = (char *)msg;
    len = strlen(msg);
  }
  CHECK_OK(dist_bcast_alloc(c, 1 % p, (void **)&text, &len));
  CHECK(len == strlen(msg) && text && !strcmp(text, msg), "bcast_alloc on rank %d", r);
  if (r != 1 % p) scl_free(text);
  int64_t v[3] = {r, r, r};
  CHECK_OK(dist_allreduce_i64(c, v, 1, DIST_SUM));
  CHECK_OK(dist_allreduce_i64(c, v + 1, 1, DIST_MAX));
  CHECK_OK(dist_allreduce_i64(c, v + 2, 1, DIST_MIN));
  CHECK(v[0] == (int64_t)p * (p - 1) / 2 && v[1] == p - 1 && v[2] == 0, "allreduce i64");
  double d[2] = {0.5 * r, 1.0};
  CHECK_OK(dist_allreduce_f64(c, d, 2, DIST_SUM));
  CHECK(d[0] == 0.25 * p * (p - 1) && d[1] == p, "allreduce f64");
  float f = (float)r;
  CHECK_OK(dist_allreduce_f32(c, &f, 1, DIST_MAX));
  CHECK(f == (float)(p - 1), "allreduce f32");
  float mine[2] = {(float)r, (float)(10 * r)}, all[2 * 64];
  CHECK_OK(dist_allgather_f32(c, mine, 2, all));
  int ok = 1;
  for (int s = 0; s < p; s++) ok &= all[2 * s] == (float)s && all[2 * s + 1] == (float)(10 * s);
  CHECK(ok, "allgather f32");
  double md = r, alld[64];
  CHECK_OK(dist_allgather_f64(c, &md, 1, alld));
  for (int s = 0; s < p; s++) CHECK(alld[s] == s, "allgather f64 slot %d", s);
  CHECK_OK(dist_barrier(c));
}

static void test_agree(const dist_comm *c) {
  int r = dist_comm_rank(c), p = dist_comm_size(c);
  CHECK_OK(dist_agree(c, SCL_OK));
  scl_error_clear();
  scl_err local = r == p - 1 ? SCL_ERROR(SCL_ERR_NUMERIC, "NaN on the last rank") : SCL_OK;
  scl_err got = dist_agree(c, local);
  CHECK(got == SCL_ERR_NUMERIC, "every rank sees the failure (rank %d got %s)", r,
        scl_error_name(got));
  if (r != p - 1) {
    char want[64];
    snprintf(want, sizeof want, "rank %d of %d failed", p - 1, p);
    CHECK(strstr(scl_error_message(), want), "rank %d: '%s'", r, scl_error_message());
  } else {
    CHECK(!strcmp(scl_error_message(), "NaN on the last rank"), "own message kept");
  }
  scl_error_clear();
}

/* Two ranks fail: rank 1 % p with SCL_ERR_ARG (the larger code) and the last rank with
 * SCL_ERR_IO. Every other rank must see rank 1 % p's code and its message forwarded verbatim. */
static void test_agree_forwards(const dist_comm *c) {
  int r = dist_comm_rank(c), p = dist_comm_size(c), bad = 1 % p;
  scl_error_clear();
  scl_err local = SCL_OK;
  if (r == bad) local = SCL_ERROR(SCL_ERR_ARG, "label 7 outside [0, 5) on rank %d", r);
  if (r == p - 1 && r != bad) local = SCL_ERROR(SCL_ERR_IO, "disk full on rank %d", r);
  scl_err got = dist_agree(c, local);
  CHECK(got == SCL_ERR_ARG, "rank %d: verdict %s, want the larger code", r, scl_error_name(got));
  char want[SCL_ERROR_MESSAGE_MAX];
  if (r == bad)
    snprintf(want, sizeof want, "label 7 outside [0, 5) on rank %d", bad);
  else
    snprintf(want, sizeof want, "rank %d of %d failed: label 7 outside [0, 5) on rank %d", bad, p,
             bad);
  if (r == p - 1 && r != bad) { /* its own failure stays the root cause, the verdict a note */
    char own[64];
    snprintf(own, sizeof own, "disk full on rank %d", r);
    CHECK(!strcmp(scl_error_message(), own) && strstr(scl_error_traceback(), want),
          "rank %d: '%s' / '%s'", r, scl_error_message(), scl_error_traceback());
  } else
    CHECK(!strcmp(scl_error_message(), want), "rank %d: message '%s', want '%s'", r,
          scl_error_message(), want);
  scl_error_clear();

  /* Equal codes: the lowest failing rank decides. */
  local = r >= p / 2 ? SCL_ERROR(SCL_ERR_FORMAT, "bad file on rank %d", r) : SCL_OK;
  got = dist_agree(c, local);
  snprintf(want, sizeof want, "rank %d of %d failed: bad file on rank %d", p / 2, p, p / 2);
  CHECK(got == SCL_ERR_FORMAT, "rank %d: equal codes verdict %s", r, scl_error_name(got));
  if (r < p / 2)
    CHECK(!strcmp(scl_error_message(), want), "rank %d: '%s', want '%s'", r, scl_error_message(),
          want);
  scl_error_clear();

  /* dist_vote: the same verdict, nothing raised; rank 0 votes while the others agree. */
  local = r == p - 1 ? SCL_ERROR(SCL_ERR_NUMERIC, "NaN") : SCL_OK;
  int who = -1;
  if (r == 0) {
    got = dist_vote(c, local, &who);
    CHECK(got == SCL_ERR_NUMERIC && who == p - 1, "vote: %s from rank %d", scl_error_name(got),
          who);
    if (p > 1) CHECK(scl_error_message()[0] == '\0', "vote raised '%s'", scl_error_message());
  } else {
    got = dist_agree(c, local);
    CHECK(got == SCL_ERR_NUMERIC, "agree beside a vote: %s", scl_error_name(got));
  }
  scl_error_clear();
}

/* The group of one process: no MPI, collectives copy or do nothing. */
static void test_self(void) {
  const dist_comm *s = dist_comm_self();
  CHECK(dist_comm_rank(s) == 0 && dist_comm_size(s) == 1 && !dist_comm_is_mpi(s), "self shape");
  scl_error_clear();
  scl_err e = SCL_ERROR(SCL_ERR_IO, "alone");
  CHECK(dist_agree(s, e) == SCL_ERR_IO && !strcmp(scl_error_message(), "alone"), "self agree");
  scl_error_clear();
  float send[3] = {1, 2, 3}, recv[3] = {0};
  int64_t counts[1] = {3};
  CHECK_OK(dist_allgather_rows_f32(s, send, counts, 1, recv));
  CHECK(recv[0] == 1 && recv[2] == 3, "self gather copies");
  CHECK_OK(dist_allreduce_f32(s, send, 3, DIST_SUM));
  CHECK(send[1] == 2, "self sum changes nothing");
  dist_comm *dup = NULL;
  CHECK_OK(dist_comm_dup(s, &dup));
  CHECK(dup && dist_comm_size(dup) == 1 && !dist_comm_is_mpi(dup), "dup of self");
  dist_comm_destroy(&dup);
  char byte = 0;
  CHECK_FAILS(dist_send(s, 0, 1, &byte, 1), SCL_ERR_ARG, "no MPI");
}

static void test_mpi_error(const dist_comm *c) {
  if (dist_comm_rank(c) != 0) return;
  char byte = 0;
  CHECK_FAILS(dist_send(c, dist_comm_size(c) + 5, 1, &byte, 1), SCL_ERR_MPI, "MPI_Send failed");
}

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv) != SCL_OK) {
    scl_log_error_traceback();
    return 1;
  }
  dist_comm *world = NULL;
  CHECK_OK(dist_comm_create(MPI_COMM_WORLD, &world));
  if (world) {
    test_split(world);
    test_messages(world);
    test_collectives(world);
    test_agree(world);
    test_agree_forwards(world);
    test_self();
    test_mpi_error(world);
    int64_t f = failures;
    CHECK_OK(dist_allreduce_i64(world, &f, 1, DIST_SUM));
    if (dist_comm_rank(world) == 0)
      printf("test_dist at %d ranks: %lld failure(s) in all\n", dist_comm_size(world),
             (long long)f);
    failures = (int)f;
  }
  dist_comm_destroy(&world);
  CHECK_OK(dist_finalize());
  return finish("test_dist");
}
