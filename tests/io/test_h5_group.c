/* test_h5_group.c: group HDF5 files (h5_file_create_atomic_group) and block-cyclic matrices
 * (h5_write_f64_cyclic / h5_read_f64_cyclic), run under mpiexec at 1, 2, 3 and 4 ranks.
 *
 * 1. For each grid that fits the ranks (1x1 with one whole block, 1x1, 1x2, 2x1, 2x2, 1x3, and a
 *    2x1 grid in which one process row holds nothing), with m, n not multiples of mb, nb: every
 *    rank writes its piece of a matrix whose values are a function of (i, j), plus replicated
 *    datasets (strings too), a group, and attributes (one of them given a different value on every rank) in
 *    one group file. Then every rank reads the published file with the serial reader: the
 *    whole matrix as 1x1 and every piece of two other layouts (1x3 with nb = 7, 2x2 with mb = 5,
 *    nb = 3) compared element by element; the replicated data once and exact; rank 0's
 *    attribute value. Rank 0 also has h5py check every element and the replicated data
 *    (h5_group_check.py).
 * 2. Rank 0 writes the same matrix through a serial file (1x1 grid) and reads it as 2x2.
 * 3. Refusals, the same on every rank: ranks passing different layouts, two ranks claiming one
 *    grid position, a grid on a serial file, a read with the wrong shape.
 * 4. Failures before commit: the last rank passes an error to h5_file_commit_group, or calls
 *    h5_file_abort while the others commit. Every rank gets the same error, the previously
 *    published file is intact, no temporary file is left. */
#include <mpi.h>

#include "io/io_test.h"
#include "safecl/dist_mpi.h"
#include "safecl/h5.h"

#ifndef SAFECL_TEST_PYTHON
#define SAFECL_TEST_PYTHON ""
#endif
#ifndef SAFECL_TEST_H5_CHECK
#define SAFECL_TEST_H5_CHECK ""
#endif

static int rank, size;
static dist_comm *world; /* MPI_COMM_WORLD as the group of every group file */
static char dir[256];

static double val(int64_t i, int64_t j) { return (double)i * 1000.0 + (double)j + 0.125; }

/* ScaLAPACK's indxl2g with source process 0: the global index of local index l. */
static int64_t l2g(int64_t l, int64_t nb, int iproc, int nprocs) {
  return (l / nb * nprocs + iproc) * nb + l % nb;
}

typedef struct layout {
  int64_t m, n, mb, nb;
  int nprow, npcol;
} layout;

/* Fills (or checks, if `check`) the piece of process (pr, pc), column-major with leading
 * dimension lld. Returns the number of mismatches. */
static int64_t piece(const layout *L, int pr, int pc, double *local, int64_t lld, int check) {
  int64_t mloc = h5_cyclic_numroc(L->m, L->mb, pr, L->nprow);
  int64_t nloc = h5_cyclic_numroc(L->n, L->nb, pc, L->npcol), bad = 0;
  for (int64_t jl = 0; jl < nloc; jl++)
    for (int64_t il = 0; il < mloc; il++) {
      double want = val(l2g(il, L->mb, pr, L->nprow), l2g(jl, L->nb, pc, L->npcol));
      if (!check)
        local[il + jl * lld] = want;
      else if (local[il + jl * lld] != want && bad++ < 3)
        fprintf(stderr,
                "FAIL rank %d: piece (%d, %d) of %lldx%lld/%dx%d: (%lld, %lld) = %g, want %g\n",
                rank, pr, pc, (long long)L->mb, (long long)L->nb, L->nprow, L->npcol, (long long)il,
                (long long)jl, local[il + jl * lld], want);
    }
  return bad;
}

static int64_t lld_of(const layout *L, int pr) {
  return h5_cyclic_numroc(L->m, L->mb, pr, L->nprow) + 3; /* padding: lld > local rows */
}

/* Every rank: an all-ranks-agree check that a status is the same everywhere. */
static void check_same_everywhere(const char *what, scl_err err, scl_err want) {
  int mine[2] = {err, -err}, all[2];
  MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  CHECK(err == want, "%s: rank %d got %s, want %s (%s)", what, rank, scl_error_name(err),
        scl_error_name(want), scl_error_message());
  CHECK(all[0] == -all[1], "%s: the ranks returned different statuses", what);
  if (err) printf("r%d %-40s -> [%s] %s\n", rank, what, scl_error_name(err), scl_error_message());
  scl_error_clear();
}

static int tmp_files_left(void) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
  if (d) closedir(d);
  return n;
}

/* ---------------------------------------------------------------------------------------- */
/* 1. Round trips                                                                            */

static const double vec[5] = {1.5, -2.0, 0.0, 1e300, -1e-300};
static const int64_t ids[3] = {7, -1, (int64_t)1 << 50};
static const char *names[4] = {"cat", "caf\xc3\xa9", "", "a longer class name"};

static void write_replicated(h5_file *f) {
  float m32[6 * 40];
  for (int k = 0; k < 6 * 40; k++) m32[k] = (float)(k % 17) * 0.25f;
  CHECK_OK(h5_write_provenance(f, 1));
  CHECK_OK(h5_write_f64_1d(f, "state/vec", vec, 5));
  CHECK_OK(h5_write_i64_1d(f, "state/ids", ids, 3));
  CHECK_OK(h5_write_f32_2d(f, "state/m32_gz", m32, 6, 40, 4));
  CHECK_OK(h5_write_strings(f, "state/classes", names, 4));
  CHECK_OK(h5_group_create(f, "session/0"));
  CHECK_OK(h5_attr_write_str(f, "/", "config", "model.depth = 12;"));
  CHECK_OK(h5_attr_write_i64(f, "/", "writer_rank", rank)); /* differs per rank: rank 0 wins */
  CHECK_OK(h5_attr_write_f64(f, "state/vec", "scale", 0.5));
  CHECK_OK(h5_attr_write_i64(f, "session/0", "epoch", 3));
}

static void check_replicated(h5_file *f) {
  double v[5];
  int64_t i[3], w = -1, epoch = -1;
  float m32[6 * 40];
  char *cfg = NULL, *host = NULL;
  CHECK_OK(h5_read_f64_1d(f, "state/vec", v, 5));
  CHECK_OK(h5_read_i64_1d(f, "state/ids", i, 3));
  CHECK_OK(h5_read_f32_2d(f, "state/m32_gz", m32, 6, 40));
  for (int k = 0; k < 5; k++) CHECK(v[k] == vec[k], "vec[%d] = %g", k, v[k]);
  for (int k = 0; k < 3; k++) CHECK(i[k] == ids[k], "ids[%d] = %lld", k, (long long)i[k]);
  for (int k = 0; k < 6 * 40; k++)
    CHECK(m32[k] == (float)(k % 17) * 0.25f, "m32_gz[%d] = %g", k, (double)m32[k]);
  CHECK_OK(h5_attr_read_str(f, "/", "config", &cfg));
  CHECK(cfg && strcmp(cfg, "model.depth = 12;") == 0, "config attribute '%s'", cfg ? cfg : "");
  CHECK_OK(h5_attr_read_i64(f, "/", "writer_rank", &w));
  CHECK(w == 0, "writer_rank %lld: rank 0's value should win", (long long)w);
  CHECK_OK(h5_attr_read_i64(f, "session/0", "epoch", &epoch));
  CHECK(epoch == 3, "epoch %lld", (long long)epoch);
  CHECK_OK(h5_attr_read_str(f, "/", "hostname", &host));
  char **strs = NULL;
  int64_t ns = 0;
  CHECK_OK(h5_read_strings(f, "state/classes", &strs, &ns));
  CHECK(ns == 4, "%lld class names", (long long)ns);
  for (int64_t k = 0; k < ns && k < 4; k++)
    CHECK(strcmp(strs[k], names[k]) == 0, "class %lld '%s'", (long long)k, strs[k]);
  h5_strings_free(strs, ns);
  CHECK_OK(h5_check_schema(f, 1, "group test"));
  free(cfg);
  free(host);
}

/* Reads every piece of layout R from `name` and checks it. */
static void check_layout(h5_file *f, const char *name, const layout *R) {
  int64_t bad = 0;
  for (int pr = 0; pr < R->nprow; pr++)
    for (int pc = 0; pc < R->npcol; pc++) {
      int64_t lld = lld_of(R, pr), nloc = h5_cyclic_numroc(R->n, R->nb, pc, R->npcol);
      double *local = calloc((size_t)(lld * (nloc ? nloc : 1)), sizeof *local);
      CHECK_OK(h5_read_f64_cyclic(f, name, R->m, R->n, R->mb, R->nb, R->nprow, R->npcol, pr, pc, 1,
                                  local, lld));
      bad += piece(R, pr, pc, local, lld, 1);
      free(local);
    }
  CHECK(bad == 0, "%s read as %lldx%lld blocks on %dx%d: %lld wrong elements", name,
        (long long)R->mb, (long long)R->nb, R->nprow, R->npcol, (long long)bad);
}

/* Writes L collectively: rank r < nprow * npcol is process (r / npcol, r % npcol). */
static scl_err write_cyclic(h5_file *f, const char *name, const layout *L) {
  int holds = rank < L->nprow * L->npcol;
  int pr = holds ? rank / L->npcol : 0, pc = holds ? rank % L->npcol : 0;
  int64_t lld = lld_of(L, pr), nloc = h5_cyclic_numroc(L->n, L->nb, pc, L->npcol);
  double *local = holds ? calloc((size_t)(lld * (nloc ? nloc : 1)), sizeof *local) : NULL;
  if (holds) piece(L, pr, pc, local, lld, 0);
  scl_err err = h5_write_f64_cyclic(f, name, L->m, L->n, L->mb, L->nb, L->nprow, L->npcol, pr, pc,
                                    holds, local, lld);
  free(local);
  return err;
}

static void test_roundtrip(const layout *L, int index) {
  if (L->nprow * L->npcol > size) return;
  char path[512], cmd[1200];
  snprintf(path, sizeof path, "%s/ckpt_%d.h5", dir, index);
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic_group(path, world, &f));
  if (!f) return;
  write_replicated(f);
  CHECK_OK(write_cyclic(f, "ridge/A", L));
  CHECK(!file_exists(path), "%s exists before commit", path);
  CHECK_OK(h5_file_commit(&f));
  CHECK(f == NULL, "commit left the handle");
  MPI_Barrier(MPI_COMM_WORLD);

  const layout whole = {L->m, L->n, L->m, L->n, 1, 1}, one = {L->m, L->n, 4, 5, 1, 1};
  const layout r13 = {L->m, L->n, 3, 7, 1, 3}, r22 = {L->m, L->n, 5, 3, 2, 2};
  h5_file *r = NULL;
  CHECK_OK(h5_file_open_read(path, &r));
  if (r) {
    check_layout(r, "ridge/A", &whole);
    check_layout(r, "ridge/A", &one);
    check_layout(r, "ridge/A", &r13);
    check_layout(r, "ridge/A", &r22);
    check_replicated(r);
    CHECK_OK(h5_file_close(&r));
  }
  if (rank == 0 && SAFECL_TEST_PYTHON[0] && SAFECL_TEST_H5_CHECK[0]) {
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' %lld %lld", SAFECL_TEST_PYTHON, SAFECL_TEST_H5_CHECK,
             path, (long long)L->m, (long long)L->n);
    CHECK(system(cmd) == 0, "h5py check failed: %s", cmd);
  }
  if (rank == 0)
    printf("round trip %d: %lldx%lld in %lldx%lld blocks on %dx%d (%d ranks): %s\n", index,
           (long long)L->m, (long long)L->n, (long long)L->mb, (long long)L->nb, L->nprow, L->npcol,
           size, failures ? "FAILURES" : "ok");
  MPI_Barrier(MPI_COMM_WORLD);
}

/* ---------------------------------------------------------------------------------------- */
/* 2. A serial file with the whole matrix                                                    */

static void test_serial(void) {
  if (rank != 0) return;
  const layout L = {23, 17, 23, 17, 1, 1}, R = {23, 17, 5, 3, 2, 2};
  char path[512];
  snprintf(path, sizeof path, "%s/serial.h5", dir);
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic(path, &f));
  int64_t lld = 30;
  double *a = calloc((size_t)(lld * L.n), sizeof *a);
  piece(&L, 0, 0, a, lld, 0);
  CHECK_OK(h5_write_f64_cyclic(f, "A", L.m, L.n, L.mb, L.nb, 1, 1, 0, 0, 1, a, lld));
  /* Refusal: a serial file cannot take a piece of a larger grid. */
  scl_error_clear();
  const char *grid[] = {"serial.h5", "2x2 grid", NULL};
  expect_error("serial file, 2x2 grid",
               h5_write_f64_cyclic(f, "B", 23, 17, 5, 3, 2, 2, 0, 0, 1, a, lld), SCL_ERR_ARG, grid);
  CHECK_OK(h5_file_commit(&f));
  h5_file *r = NULL;
  CHECK_OK(h5_file_open_read(path, &r));
  if (r) {
    check_layout(r, "A", &R);
    const char *shape[] = {"serial.h5", "'A'", "(23, 17)", "(17, 23)", NULL};
    expect_error("wrong shape", h5_read_f64_cyclic(r, "A", 17, 23, 4, 4, 1, 1, 0, 0, 1, a, lld),
                 SCL_ERR_FORMAT, shape);
    CHECK_OK(h5_file_close(&r));
  }
  free(a);
}

/* ---------------------------------------------------------------------------------------- */
/* 3. Refusals on a group file, and 4. failures before commit                                */

static void publish_generation(const char *path, int64_t generation) {
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic_group(path, world, &f));
  if (!f) return;
  CHECK_OK(h5_attr_write_i64(f, "/", "generation", generation));
  const layout L = {9, 11, 2, 3, (size >= 2) ? 2 : 1, 1};
  CHECK_OK(write_cyclic(f, "A", &L));
  CHECK_OK(h5_file_commit(&f));
}

static void check_generation(const char *path, int64_t want, const char *what) {
  MPI_Barrier(MPI_COMM_WORLD);
  h5_file *r = NULL;
  int64_t g = -1;
  CHECK_OK(h5_file_open_read(path, &r));
  if (r) {
    CHECK_OK(h5_attr_read_i64(r, "/", "generation", &g));
    CHECK_OK(h5_file_close(&r));
  }
  CHECK(g == want, "%s: generation %lld at %s, want %lld", what, (long long)g, path,
        (long long)want);
  CHECK(tmp_files_left() == 0, "%s: a temporary file is left in %s", what, dir);
  MPI_Barrier(MPI_COMM_WORLD);
}

static void test_refusals(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/refused.h5", dir);
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic_group(path, world, &f));
  if (!f) return;
  /* The last rank passes another block size. */
  layout L = {9, 11, 2, 3, 1, 1};
  if (rank == size - 1 && size > 1) L.mb = 4;
  int holds = rank == 0;
  double a[9 * 11];
  piece(&L, 0, 0, a, 9, 0);
  scl_err err = h5_write_f64_cyclic(f, "A", L.m, L.n, L.mb, L.nb, 1, 1, 0, 0, holds, a, 9);
  check_same_everywhere("different layouts", err, size > 1 ? SCL_ERR_ARG : SCL_OK);
  /* Every rank claims position (0, 0) of a 1x1 grid. */
  err = h5_write_f64_cyclic(f, "B", 9, 11, 2, 3, 1, 1, 0, 0, 1, a, 9);
  check_same_everywhere("one position, every rank", err, size > 1 ? SCL_ERR_ARG : SCL_OK);
  /* The group is still in lockstep: a replicated write works, then everything is dropped. */
  CHECK_OK(h5_write_f64_1d(f, "after", vec, 5));
  h5_file_abort(&f);
  CHECK(f == NULL && !file_exists(path), "abort published %s", path);
  CHECK(tmp_files_left() == 0, "abort left a temporary file");
}

static void test_failures(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/ckpt.h5", dir);
  publish_generation(path, 1);
  check_generation(path, 1, "first publication");
  int last = size - 1;

  /* (a) The last rank's own work failed: it passes its status to the commit. */
  h5_file *f = NULL;
  CHECK_OK(h5_file_create_atomic_group(path, world, &f));
  CHECK_OK(h5_attr_write_i64(f, "/", "generation", 2));
  scl_err local = SCL_OK;
  if (rank == last) local = SCL_ERROR(SCL_ERR_IO, "simulated failure on rank %d", rank);
  check_same_everywhere("commit with a failed rank", h5_file_commit_group(&f, local), SCL_ERR_IO);
  CHECK(f == NULL, "commit_group left the handle");
  check_generation(path, 1, "after a failed rank");

  /* (b) The last rank aborts while the others commit. */
  CHECK_OK(h5_file_create_atomic_group(path, world, &f));
  CHECK_OK(h5_attr_write_i64(f, "/", "generation", 3));
  scl_err err = SCL_ERR_IO;
  if (rank == last)
    h5_file_abort(&f);
  else
    err = h5_file_commit(&f);
  check_same_everywhere("commit while a rank aborts", err, SCL_ERR_IO);
  check_generation(path, 1, "after an abort");

  /* (c) And a clean commit still replaces it. */
  publish_generation(path, 4);
  check_generation(path, 4, "second publication");
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CHECK_OK(dist_comm_create(MPI_COMM_WORLD, &world));
  scl_log_set_rank(rank);
  if (rank == 0) snprintf(dir, sizeof dir, "%s", scratch_dir("h5group_"));
  MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);

  const layout cases[] = {
      {23, 17, 23, 17, 1, 1}, /* one whole block */
      {23, 17, 4, 5, 1, 1},   {23, 17, 4, 5, 1, 2}, {23, 17, 4, 5, 2, 1},
      {23, 17, 4, 5, 2, 2},   {23, 17, 4, 5, 1, 3}, {3, 17, 4, 5, 2, 1}, /* row 1 holds nothing */
      {40, 33, 6, 5, 2, 2},
  };
  for (int k = 0; k < (int)(sizeof cases / sizeof cases[0]); k++) test_roundtrip(&cases[k], k);
  test_serial();
  MPI_Barrier(MPI_COMM_WORLD);
  test_refusals();
  test_failures();

  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) {
    if (all == 0) scratch_remove(dir);
    printf("test_h5_group (%d ranks): %s\n", size, all ? "FAILED" : "ok");
  }
  dist_comm_destroy(&world);
  MPI_Finalize();
  return all != 0;
}
