/* group_matrix.c: an M x M double matrix spread over the ridge solver's group, and the four
 * operations the classifier needs on it: add the Gram matrix of rows that live on every rank
 * (syrk), multiply by a replicated M x C matrix, and the symmetric eigendecomposition.
 *
 * Two layouts behind one type: ScaLAPACK's 2-D block-cyclic layout on the near-square grid, or
 * the whole matrix on group rank 0 (a 1 x 1 grid with block M, the LAPACK solver). The rows of
 * H enter through psgemr2d from the P x 1 grid where they live, padded with zero rows to the
 * largest count of any rank, so the redistribution is a ScaLAPACK call rather than an
 * all-to-all written here; zero rows add nothing to H^T H. Communication per step is the rows
 * themselves (floats, not doubles), never an M x M matrix, and steps are sized so that a rank
 * holds at most GROUP_CHUNK_BYTES of rows at a time. Local products work on each rank's own
 * blocks and are summed (ScaLAPACK) or broadcast from rank 0 (LAPACK); so a replicated M x C
 * result costs one reduction of M x C doubles. */
#include <cblas.h>
#include <string.h>

#include "group_internal.h"
#include "lapack.h"
#include "scalapack.h"

int64_t grp_local_to_global(int64_t l, int64_t nb, int p, int nprocs) {
  return (l / nb) * nb * nprocs + (int64_t)p * nb + l % nb;
}

static int64_t local_count(int64_t n, int64_t nb, int p, int nprocs) {
  int64_t blocks = n / nb, loc = (blocks / nprocs) * nb, extra = blocks % nprocs;
  if (p < extra)
    loc += nb;
  else if (p == extra)
    loc += n % nb;
  return loc;
}

/* Layout only (no allocation). */
static scl_err layout(grp_matrix *a, linalg_group *g, int64_t m, int lapack) {
  memset(a, 0, sizeof *a);
  a->g = g;
  a->m = m;
  a->lapack = lapack;
  a->desc[SCALAPACK_CTXT] = -1;
  SCL_CHECK(m > 0 && m <= 0x7fffffff / 2, SCL_ERR_ARG,
            "ridge system of order %lld is not supported", (long long)m);
  if (lapack) {
    a->ctxt = g->ctx_root;
    a->in_grid = g->rank == 0;
    a->nprow = a->npcol = 1;
    a->myrow = a->mycol = a->in_grid ? 0 : -1;
    a->nb = m;
  } else {
    a->ctxt = g->ctx_grid;
    a->in_grid = 1;
    a->nprow = g->nprow;
    a->npcol = g->npcol;
    a->myrow = g->myrow;
    a->mycol = g->mycol;
    a->nb = GROUP_NB;
  }
  if (a->in_grid) {
    a->locr = local_count(m, a->nb, a->myrow, a->nprow);
    a->locc = local_count(m, a->nb, a->mycol, a->npcol);
  }
  a->lld = a->locr > 1 ? a->locr : 1;
  if (a->in_grid && a->ctxt >= 0) {
    int n = (int)m, nb = (int)a->nb, zero = 0, lld = (int)a->lld, info = 0;
    descinit_(a->desc, &n, &n, &nb, &nb, &zero, &zero, &a->ctxt, &lld, &info);
    SCL_CHECK(!info, SCL_ERR_INTERNAL, "descinit of the %lld-order matrix: info=%d", (long long)m,
              info);
  }
  return SCL_OK;
}

scl_err grp_matrix_init(grp_matrix *a, linalg_group *g, int64_t m, int lapack) {
  SCL_CALL(layout(a, g, m, lapack));
  if (a->in_grid)
    SCL_CALL(scl_calloc((size_t)(a->lld * (a->locc > 0 ? a->locc : 1)) * sizeof(double),
                        "ridge Gram matrix (local piece)", (void **)&a->a));
  return SCL_OK;
}

void grp_matrix_free(grp_matrix *a) {
  scl_free(a->a);
  a->a = NULL;
}

/* The buffers of one redistribution step: k padded rows per rank. */
typedef struct syrk_bufs {
  float *src, *dst;
  double *dd;
} syrk_bufs;

static scl_err syrk_alloc(const grp_matrix *a, int64_t k, syrk_bufs *b, int64_t *dst_elems) {
  const linalg_group *g = a->g;
  int64_t rows = (int64_t)g->size * k;
  int64_t dr = a->in_grid ? local_count(rows, a->lapack ? rows : a->nb, a->myrow, a->nprow) : 0;
  *dst_elems = (dr > 0 ? dr : 1) * (a->locc > 0 ? a->locc : 1);
  SCL_CALL(scl_alloc((size_t)(k * a->m) * sizeof(float), "rows to redistribute", (void **)&b->src));
  SCL_CALL(scl_alloc((size_t)*dst_elems * sizeof(float), "redistributed rows", (void **)&b->dst));
  SCL_CALL(scl_alloc((size_t)*dst_elems * sizeof(double), "redistributed rows (double)",
                     (void **)&b->dd));
  return SCL_OK;
}

/* One step: the k-row block of every rank (zero-padded) -> Gram update of a. */
static scl_err syrk_step(grp_matrix *a, syrk_bufs *b, int64_t k) {
  linalg_group *g = a->g;
  int m = (int)a->m, kk = (int)k, rows = g->size * kk, one = 1, zero = 0, info = 0;
  int desc_src[SCALAPACK_DLEN], desc_dst[SCALAPACK_DLEN];
  descinit_(desc_src, &rows, &m, &kk, &m, &zero, &zero, &g->ctx_col, &kk, &info);
  SCL_CHECK(!info, SCL_ERR_INTERNAL, "descinit (rows %d x %d): info=%d", rows, m, info);
  int mb = a->lapack ? rows : (int)a->nb, nb = (int)a->nb;
  int dr = a->in_grid ? (int)local_count(rows, mb, a->myrow, a->nprow) : 0;
  int ld = dr > 1 ? dr : 1;
  desc_dst[SCALAPACK_CTXT] = -1;
  if (a->in_grid) {
    descinit_(desc_dst, &rows, &m, &mb, &nb, &zero, &zero, &a->ctxt, &ld, &info);
    SCL_CHECK(!info, SCL_ERR_INTERNAL, "descinit (grid rows): info=%d", info);
  }
  psgemr2d_(&rows, &m, b->src, &one, &one, desc_src, b->dst, &one, &one, desc_dst, &g->ctx_grid);
  if (!a->in_grid) return grp_quiet_barrier(g, a->lapack);
  int64_t elems = (int64_t)dr * a->locc;
  for (int64_t i = 0; i < elems; i++) b->dd[i] = (double)b->dst[i];
  const double alpha = 1.0, beta = 1.0;
  if (a->lapack) {
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, m, rows, 1.0, b->dd, ld, 1.0, a->a,
                (int)a->lld);
    SCL_CALL(grp_quiet_barrier(g, 1));
  } else {
    pdsyrk_("U", "T", &m, &rows, &alpha, b->dd, &one, &one, desc_dst, &beta, a->a, &one, &one,
            a->desc, 1, 1);
  }
  return SCL_OK;
}

/* Without a communicator: the rows straight into the local matrix. */
static scl_err syrk_local(grp_matrix *a, const float *H, const uint8_t *sel, int64_t n) {
  int64_t m = a->m, k = GROUP_CHUNK_BYTES / (8 * m);
  if (k < 1) k = 1;
  double *x = NULL;
  SCL_CALL(scl_alloc((size_t)(k * m) * sizeof(double), "Gram rows", (void **)&x));
  int64_t i = 0;
  while (i < n) {
    int64_t rows = 0;
    for (; i < n && rows < k; i++) {
      if (sel && !sel[i]) continue;
      for (int64_t j = 0; j < m; j++) x[rows * m + j] = (double)H[i * m + j];
      rows++;
    }
    /* x (rows x m row-major) is X = x^T column-major (m x rows): a += X X^T. */
    if (rows)
      cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, (int)m, (int)rows, 1.0, x, (int)m, 1.0,
                  a->a, (int)a->lld);
  }
  scl_free(x);
  return SCL_OK;
}

scl_err grp_matrix_syrk_rows(grp_matrix *a, const float *H, const uint8_t *sel, int64_t n) {
  linalg_group *g = a->g;
  if (!g->comm) return syrk_local(a, H, sel, n);
  int64_t count = 0;
  for (int64_t i = 0; i < n; i++) count += !sel || sel[i];
  int64_t nmax = count;
  SCL_CALL(linalg_group_max_i64(g, &nmax, 1));
  if (nmax == 0) return SCL_OK;
  int64_t k = GROUP_CHUNK_BYTES / (12 * a->m * g->size);
  if (k < 1) k = 1;
  if (k > nmax) k = nmax;
  syrk_bufs b = {0};
  int64_t dst_elems = 0;
  scl_err err = syrk_alloc(a, k, &b, &dst_elems);
  SCL_CALL_GOTO(err, grp_agree(g, err), done);
  int64_t i = 0;
  for (int64_t r0 = 0; r0 < nmax; r0 += k) {
    int64_t kk = nmax - r0 < k ? nmax - r0 : k, rows = 0;
    /* Column-major kk x m block: this rank's next selected rows, then zero rows. */
    memset(b.src, 0, (size_t)(kk * a->m) * sizeof(float));
    for (; i < n && rows < kk; i++) {
      if (sel && !sel[i]) continue;
      for (int64_t j = 0; j < a->m; j++) b.src[rows + j * kk] = H[i * a->m + j];
      rows++;
    }
    SCL_CALL_GOTO(err, syrk_step(a, &b, kk), done);
  }
done:
  scl_free(b.src);
  scl_free(b.dst);
  scl_free(b.dd);
  return err;
}

scl_err grp_matrix_mul_replicated(const grp_matrix *a, int trans, const double *X, int64_t c,
                                  double *out) {
  linalg_group *g = a->g;
  int64_t m = a->m, nin = trans ? a->locr : a->locc, nout = trans ? a->locc : a->locr;
  double *xl = NULL, *o = NULL;
  scl_err err = SCL_OK;
  memset(out, 0, (size_t)(m * c) * sizeof(double));
  if (a->in_grid && nin > 0 && nout > 0) {
    err = scl_alloc((size_t)(nin * c) * sizeof(double), "local right-hand sides", (void **)&xl);
    if (!err) err = scl_alloc((size_t)(nout * c) * sizeof(double), "local products", (void **)&o);
  }
  SCL_CALL_GOTO(err, grp_agree(g, err), done);
  if (xl) {
    /* Rows of X that meet this rank's rows (trans) or columns of A, column-major nin x c. */
    int pin = trans ? a->myrow : a->mycol, nin_p = trans ? a->nprow : a->npcol;
    int pout = trans ? a->mycol : a->myrow, nout_p = trans ? a->npcol : a->nprow;
    for (int64_t l = 0; l < nin; l++) {
      int64_t gl = grp_local_to_global(l, a->nb, pin, nin_p);
      for (int64_t k = 0; k < c; k++) xl[l + k * nin] = X[gl * c + k];
    }
    cblas_dgemm(CblasColMajor, trans ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)nout, (int)c,
                (int)nin, 1.0, a->a, (int)a->lld, xl, (int)nin, 0.0, o, (int)nout);
    for (int64_t l = 0; l < nout; l++) {
      int64_t gl = grp_local_to_global(l, a->nb, pout, nout_p);
      for (int64_t k = 0; k < c; k++) out[gl * c + k] = o[l + k * nout];
    }
  }
  if (a->lapack) {
    SCL_CALL_GOTO(err, grp_quiet_barrier(g, 1), done);
    SCL_CALL_GOTO(err, grp_bcast(g, out, (size_t)(m * c) * sizeof(double)), done);
  } else {
    SCL_CALL_GOTO(err, grp_sum_f64(g, out, m * c), done);
  }
done:
  scl_free(xl);
  scl_free(o);
  return err;
}

/* dsyevd on rank 0's whole matrix, in place; info returned (0 on the other ranks). */
static scl_err eigen_lapack(grp_matrix *a, double *e, int *info) {
  int n = (int)a->m, lda = (int)a->lld, lwork = -1, liwork = -1, iq = 0;
  double wq = 0;
  *info = 0;
  if (!a->in_grid) return SCL_OK;
  dsyevd_("V", "U", &n, a->a, &lda, e, &wq, &lwork, &iq, &liwork, info, 1, 1);
  if (*info) return SCL_OK;
  lwork = (int)wq + 1;
  liwork = iq + 1;
  double *work = NULL;
  int *iwork = NULL;
  scl_err err = scl_alloc((size_t)lwork * sizeof(double), "dsyevd work", (void **)&work);
  if (!err) err = scl_alloc((size_t)liwork * sizeof(int), "dsyevd iwork", (void **)&iwork);
  if (!err) dsyevd_("V", "U", &n, a->a, &lda, e, work, &lwork, iwork, &liwork, info, 1, 1);
  scl_free(work);
  scl_free(iwork);
  return err;
}

/* pdsyevd of a into z (allocated here); info the same on every rank after the caller's max. */
static scl_err eigen_scalapack(grp_matrix *a, grp_matrix *z, double *e, int *info) {
  int n = (int)a->m, one = 1, lwork = -1, liwork = -1, iq = 0;
  double wq = 0;
  *info = 0;
  pdsyevd_("V", "U", &n, a->a, &one, &one, a->desc, e, z->a, &one, &one, z->desc, &wq, &lwork, &iq,
           &liwork, info, 1, 1);
  if (*info) return SCL_OK;
  /* pdsyevd's query is known to come out short on some grids: leave room. */
  lwork = (int)(wq * 1.2) + 4 * n + 1024;
  liwork = iq + 8 * n + 64;
  double *work = NULL;
  int *iwork = NULL;
  scl_err err = scl_alloc((size_t)lwork * sizeof(double), "pdsyevd work", (void **)&work);
  if (!err) err = scl_alloc((size_t)liwork * sizeof(int), "pdsyevd iwork", (void **)&iwork);
  SCL_CALL_GOTO(err, grp_agree(a->g, err), done);
  pdsyevd_("V", "U", &n, a->a, &one, &one, a->desc, e, z->a, &one, &one, z->desc, work, &lwork,
           iwork, &liwork, info, 1, 1);
done:
  scl_free(work);
  scl_free(iwork);
  return err;
}

scl_err grp_matrix_eigen(grp_matrix *a, grp_matrix *v, double *e) {
  linalg_group *g = a->g;
  int info = 0;
  scl_err err = SCL_OK;
  if (a->lapack) {
    SCL_CALL(layout(v, g, a->m, 1));
    err = eigen_lapack(a, e, &info);
    SCL_CALL(grp_quiet_barrier(g, 1));
    v->a = a->a; /* dsyevd works in place: the vectors take over a's storage */
    a->a = NULL;
  } else {
    err = grp_matrix_init(v, g, a->m, 0);
    SCL_CALL(grp_agree(g, err));
    err = eigen_scalapack(a, v, e, &info);
  }
  SCL_CALL(grp_agree(g, err));
  /* One verdict: rank 0's info (LAPACK), or the largest (else smallest) over the grid. */
  int64_t code[2] = {info, -(int64_t)info};
  if (a->lapack)
    SCL_CALL(grp_bcast(g, code, sizeof code));
  else
    SCL_CALL(linalg_group_max_i64(g, code, 2));
  if (code[0] == 0) code[0] = -code[1];
  SCL_CHECK(!code[0], SCL_ERR_LAPACK,
            "%s failed on the %lldx%lld ridge search Gram matrix: info=%lld",
            a->lapack ? "dsyevd" : "pdsyevd", (long long)a->m, (long long)a->m, (long long)code[0]);
  SCL_CALL(grp_bcast(g, e, (size_t)a->m * sizeof(double)));
  return SCL_OK;
}
