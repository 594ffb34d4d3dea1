/* learn_driver.c: runs one learn kernel, loss or training loop on inputs written by learn_ref.py
 * and writes the results back, for the PyTorch parity test.
 *
 *   learn_driver CASE in.blob out.blob
 *
 * CASE is cosine, ce, transfer, align, crossclass, optim, sched, train_slow or train_fast; the
 * tensors each case reads and writes are listed at its function. Shapes come in a "dims" i64
 * record and scalars in a "hyper" f64 record. The two training cases run a small model made of a
 * trainable linear feature map (phi = x A^T, the stand-in for the PET backbone) and a cosine head,
 * trained with SGD under the cosine schedule, one epoch per step. All comparisons happen in
 * Python; this program only computes. */
#include <math.h>

#include "learn_blob.h"
#include "learn_test.h"

/* ---- single kernels ---------------------------------------------------------------------- */

/* in: x (B,D) w (K,D) sigma y (B) dims [B,K,D] hyper [lr, momentum, wd]
 * out: logits, loss, dx, dw, dsigma, w_new, sigma_new (CE backward, then one SGD step of the
 * head: the first-update quirk of a zero row). */
static void case_cosine(const blob *in, FILE *out) {
  const int64_t *dm = BLOB_I(in, "dims", 3), B = dm[0], K = dm[1], D = dm[2];
  const double *hp = BLOB_D(in, "hyper", 3);
  const float *x = BLOB_F(in, "x", B * D);
  const int64_t *y = BLOB_I(in, "y", B);
  float *head = talloc(learn_cosine_params(K, D), 4), *grad = talloc(learn_cosine_params(K, D), 4);
  float *buf = talloc(learn_cosine_params(K, D), 4);
  memcpy(head, BLOB_F(in, "w", K * D), (size_t)(K * D) * 4);
  head[K * D] = BLOB_F(in, "sigma", 1)[0];
  float *lg = talloc(B * K, 4), *dl = talloc(B * K, 4), *dx = talloc(B * D, 4);
  float *cm = talloc(learn_cosine_cache_floats(B, K, D), 4);
  float *scr = talloc(learn_cosine_backward_scratch(B, K, D), 4);
  learn_cosine_cache c = learn_cosine_cache_bind(cm, B, K, D);
  learn_cosine_forward(lg, &c, x, head, head + K * D, B, K, D);
  double loss = learn_ce_loss(dl, lg, y, B, K, 1.0);
  learn_cosine_backward(dx, grad, grad + K * D, scr, dl, x, head, head + K * D, &c, B, K, D);
  blob_put(out, "logits", BLOB_F32, lg, B * K);
  blob_put(out, "loss", BLOB_F64, &loss, 1);
  blob_put(out, "dx", BLOB_F32, dx, B * D);
  blob_put(out, "dw", BLOB_F32, grad, K * D);
  blob_put(out, "dsigma", BLOB_F32, grad + K * D, 1);
  learn_sgd_cfg cfg = {hp[1], 0.0, 0};
  learn_param_group all = {0, learn_cosine_params(K, D), 1.0, hp[2]};
  learn_sgd_step(head, buf, grad, 0, hp[0], &cfg, &all, 1);
  blob_put(out, "w_new", BLOB_F32, head, K * D);
  blob_put(out, "sigma_new", BLOB_F32, head + K * D, 1);
  free(head), free(grad), free(buf), free(lg), free(dl), free(dx), free(cm), free(scr);
}

/* in: logits (B,K) y dims [B,K]; out: loss, dlogits */
static void case_ce(const blob *in, FILE *out) {
  const int64_t *dm = BLOB_I(in, "dims", 2), B = dm[0], K = dm[1];
  float *dl = talloc(B * K, 4);
  double loss = learn_ce_loss(dl, BLOB_F(in, "logits", B * K), BLOB_I(in, "y", B), B, K, 1.0);
  blob_put(out, "loss", BLOB_F64, &loss, 1);
  blob_put(out, "dlogits", BLOB_F32, dl, B * K);
  free(dl);
}

/* in: feat ptm (B,D) dims [B,D] hyper [lambda_diag, lambda_rdn]; out: loss, dfeat */
static void case_transfer(const blob *in, FILE *out) {
  const int64_t *dm = BLOB_I(in, "dims", 2), B = dm[0], D = dm[1];
  const double *hp = BLOB_D(in, "hyper", 2);
  float *df = talloc(B * D, 4), *scr = talloc(learn_transfer_scratch(B, D), 4);
  double loss = learn_transfer_loss(df, scr, BLOB_F(in, "feat", B * D), BLOB_F(in, "ptm", B * D), B,
                                    D, hp[0], hp[1], 1.0);
  blob_put(out, "loss", BLOB_F64, &loss, 1);
  blob_put(out, "dfeat", BLOB_F32, df, B * D);
  free(df), free(scr);
}

/* in: f s (B,D) dims [B,D]; out: loss, df */
static void case_align(const blob *in, FILE *out) {
  const int64_t *dm = BLOB_I(in, "dims", 2), B = dm[0], D = dm[1];
  float *df = talloc(B * D, 4);
  double loss = learn_align_loss(df, BLOB_F(in, "f", B * D), BLOB_F(in, "s", B * D), B, D, 1.0);
  blob_put(out, "loss", BLOB_F64, &loss, 1);
  blob_put(out, "df", BLOB_F32, df, B * D);
  free(df);
}

/* in: w_fast w_slow (Kt,D) sigma_fast sigma_slow phi_fast phi_slow (B,D) y dims [K,Kt,B,D]
 * out: loss, parts (l1, l2), dw_fast, dsigma_fast, dphi_fast */
static void case_crossclass(const blob *in, FILE *out) {
  const int64_t *dm = BLOB_I(in, "dims", 4), K = dm[0], Kt = dm[1], B = dm[2], D = dm[3];
  float *dw = talloc(Kt * D, 4), *dp = talloc(B * D, 4), ds = 0.0f;
  float *scr = talloc(learn_crossclass_scratch(K, Kt, B, D), 4);
  double parts[2];
  double loss = learn_crossclass_loss(
      dw, &ds, dp, scr, parts, BLOB_F(in, "w_fast", Kt * D), BLOB_F(in, "sigma_fast", 1),
      BLOB_F(in, "w_slow", Kt * D), BLOB_F(in, "sigma_slow", 1), BLOB_F(in, "phi_fast", B * D),
      BLOB_F(in, "phi_slow", B * D), BLOB_I(in, "y", B), K, Kt, B, D, 1.0);
  blob_put(out, "loss", BLOB_F64, &loss, 1);
  blob_put(out, "parts", BLOB_F64, parts, 2);
  blob_put(out, "dw_fast", BLOB_F32, dw, Kt * D);
  blob_put(out, "dsigma_fast", BLOB_F32, &ds, 1);
  blob_put(out, "dphi_fast", BLOB_F32, dp, B * D);
  free(dw), free(dp), free(scr);
}

/* in: p0 (n) grads (S,n) gi (G,2: offset,count) gf (G,2: lr_scale,wd) dims [n,S,G]
 *     hyper [kind (0 SGD, 1 Adam, 2 AdamW), lr, momentum, dampening, nesterov, beta1, beta2,
 *            eps, T_max (0: constant lr)]
 * out: params (S,n), the parameters after each step */
static void case_optim(const blob *in, FILE *out) {
  const int64_t *dm = BLOB_I(in, "dims", 3), n = dm[0], S = dm[1], G = dm[2];
  const double *hp = BLOB_D(in, "hyper", 9);
  const int64_t *gi = BLOB_I(in, "gi", 2 * G);
  const double *gf = BLOB_D(in, "gf", 2 * G);
  const float *grads = BLOB_F(in, "grads", S * n);
  learn_param_group *groups = talloc((size_t)G, sizeof *groups);
  for (int64_t g = 0; g < G; g++)
    groups[g] = (learn_param_group){gi[2 * g], gi[2 * g + 1], gf[2 * g], gf[2 * g + 1]};
  float *p = talloc(n, 4), *s1 = talloc(n, 4), *s2 = talloc(n, 4), *hist = talloc(S * n, 4);
  memcpy(p, BLOB_F(in, "p0", n), (size_t)n * 4);
  learn_sgd_cfg sc = {hp[2], hp[3], hp[4] != 0.0};
  learn_adam_cfg ac = {hp[5], hp[6], hp[7], hp[0] == 2.0};
  learn_lr_schedule sched = {hp[8] > 0 ? LEARN_LR_COSINE : LEARN_LR_CONSTANT, hp[1], 0.0,
                             (int64_t)hp[8]};
  for (int64_t s = 0; s < S; s++) {
    double lr = learn_lr_at(&sched, s);
    if (hp[0] == 0.0)
      learn_sgd_step(p, s1, grads + s * n, s, lr, &sc, groups, G);
    else
      learn_adam_step(p, s1, s2, grads + s * n, s + 1, lr, &ac, groups, G);
    memcpy(hist + s * n, p, (size_t)n * 4);
  }
  blob_put(out, "params", BLOB_F32, hist, S * n);
  free(groups), free(p), free(s1), free(s2), free(hist);
}

/* in: hyper [base, eta_min, T_max, E]; out: closed (E), recursive (E) */
static void case_sched(const blob *in, FILE *out) {
  const double *hp = BLOB_D(in, "hyper", 4);
  const int64_t E = (int64_t)hp[3];
  double *a = talloc(E, 8), *b = talloc(E, 8);
  for (int64_t e = 0; e < E; e++) {
    a[e] = learn_lr_cosine(hp[0], hp[1], (int64_t)hp[2], e);
    b[e] = learn_lr_cosine_torch(hp[0], hp[1], (int64_t)hp[2], e);
  }
  blob_put(out, "closed", BLOB_F64, a, E);
  blob_put(out, "recursive", BLOB_F64, b, E);
  free(a), free(b);
}

/* ---- training loops ---------------------------------------------------------------------- */

/* phi (B, D) = x (B, Din) A^T with A (D, Din). */
static void feat_forward(float *phi, const float *x, const float *a, int64_t B, int64_t Din,
                         int64_t D) {
  for (int64_t b = 0; b < B; b++)
    for (int64_t d = 0; d < D; d++) {
      double acc = 0.0;
      for (int64_t i = 0; i < Din; i++) acc += (double)x[b * Din + i] * (double)a[d * Din + i];
      phi[b * D + d] = (float)acc;
    }
}

/* dA (D, Din) += dphi^T x. */
static void feat_backward(float *da, const float *dphi, const float *x, int64_t B, int64_t Din,
                          int64_t D) {
  for (int64_t d = 0; d < D; d++)
    for (int64_t i = 0; i < Din; i++) {
      double acc = 0.0;
      for (int64_t b = 0; b < B; b++) acc += (double)dphi[b * D + d] * (double)x[b * Din + i];
      da[d * Din + i] += (float)acc;
    }
}

/* The rows of batch s: xb (B, Din) and yb (B). */
static void gather(float *xb, int64_t *yb, const float *x, const int64_t *y, const int64_t *rows,
                   int64_t B, int64_t Din) {
  for (int64_t b = 0; b < B; b++) {
    memcpy(xb + b * Din, x + rows[b] * Din, (size_t)Din * 4);
    yb[b] = y[rows[b]];
  }
}

typedef struct train_ws {
  float *xb, *phi, *phi2, *lg, *dl, *dphi, *cm, *scr, *lscr;
  int64_t *yb;
} train_ws;

static train_ws ws_create(int64_t B, int64_t Din, int64_t D, int64_t K, size_t loss_scratch) {
  train_ws w;
  w.xb = talloc(B * Din, 4), w.phi = talloc(B * D, 4), w.phi2 = talloc(B * D, 4);
  w.lg = talloc(B * K, 4), w.dl = talloc(B * K, 4), w.dphi = talloc(B * D, 4);
  w.cm = talloc(learn_cosine_cache_floats(B, K, D), 4);
  w.scr = talloc(learn_cosine_backward_scratch(B, K, D), 4);
  w.lscr = talloc(loss_scratch, 4), w.yb = talloc(B, 8);
  return w;
}

static void ws_destroy(train_ws *w) {
  free(w->xb), free(w->phi), free(w->phi2), free(w->lg), free(w->dl), free(w->dphi);
  free(w->cm), free(w->scr), free(w->lscr), free(w->yb);
}

/* CE of the head (w, sigma) on phi: zeroes dl and dphi, accumulates dw, dsigma and dphi. */
static double head_ce(train_ws *t, float *dw, float *dsigma, const float *w, const float *sigma,
                      int64_t B, int64_t K, int64_t D) {
  learn_cosine_cache c = learn_cosine_cache_bind(t->cm, B, K, D);
  learn_cosine_forward(t->lg, &c, t->phi, w, sigma, B, K, D);
  memset(t->dl, 0, (size_t)(B * K) * 4);
  memset(t->dphi, 0, (size_t)(B * D) * 4);
  double ce = learn_ce_loss(t->dl, t->lg, t->yb, B, K, 1.0);
  learn_cosine_backward(t->dphi, dw, dsigma, t->scr, t->dl, t->phi, w, sigma, &c, B, K, D);
  return ce;
}

/* in: x (N,Din) y (N) A (D,Din) W (K,D) sigma P (D,Din) batches (S,B)
 *     dims [N,Din,D,K,B,S] hyper [lr, momentum, wd, T_max, lambda_diag, lambda_rdn]
 * out: losses (S), params [A | W | sigma] after the last step.
 * Session-1-like: CE + transfer loss against the frozen "PTM" features x P^T. */
static void case_train_slow(const blob *in, FILE *out) {
  const int64_t *dm = BLOB_I(in, "dims", 6), N = dm[0], Din = dm[1], D = dm[2], K = dm[3];
  const int64_t B = dm[4], S = dm[5], nA = D * Din, n = nA + K * D + 1;
  const double *hp = BLOB_D(in, "hyper", 6);
  const float *x = BLOB_F(in, "x", N * Din), *P = BLOB_F(in, "P", nA);
  const int64_t *y = BLOB_I(in, "y", N), *batches = BLOB_I(in, "batches", S * B);
  float *p = talloc(n, 4), *g = talloc(n, 4), *buf = talloc(n, 4);
  memcpy(p, BLOB_F(in, "A", nA), (size_t)nA * 4);
  memcpy(p + nA, BLOB_F(in, "W", K * D), (size_t)(K * D) * 4);
  p[n - 1] = BLOB_F(in, "sigma", 1)[0];
  double *losses = talloc(S, 8);
  train_ws t = ws_create(B, Din, D, K, learn_transfer_scratch(B, D));
  const learn_sgd_cfg cfg = {hp[1], 0.0, 0};
  const learn_param_group all = {0, n, 1.0, hp[2]};
  for (int64_t s = 0; s < S; s++) {
    gather(t.xb, t.yb, x, y, batches + s * B, B, Din);
    feat_forward(t.phi, t.xb, p, B, Din, D);
    feat_forward(t.phi2, t.xb, P, B, Din, D);
    memset(g, 0, (size_t)n * 4);
    double ce = head_ce(&t, g + nA, g + n - 1, p + nA, p + n - 1, B, K, D);
    double tr = learn_transfer_loss(t.dphi, t.lscr, t.phi, t.phi2, B, D, hp[4], hp[5], 1.0);
    feat_backward(g, t.dphi, t.xb, B, Din, D);
    losses[s] = ce + tr;
    learn_sgd_step(p, buf, g, s, learn_lr_cosine(hp[0], 0.0, (int64_t)hp[3], s), &cfg, &all, 1);
  }
  blob_put(out, "losses", BLOB_F64, losses, S);
  blob_put(out, "params", BLOB_F32, p, n);
  ws_destroy(&t);
  free(p), free(g), free(buf), free(losses);
}

/* in: x (N,Din) y (N) A_F A_S (D,Din) W_F W_S (Kt,D) sigma_F sigma_S batches (S,B)
 *     dims [N,Din,D,K,Kt,B,S] hyper [lr, momentum, wd, T_max, lambda_cos, lambda_cc]
 * out: losses (S), parts (S,3: CE, L_cos, L_cc), params [A_F | W_F | sigma_F] at the end.
 * Fast-learner-like: CE + lambda_cos L_cos + lambda_cc L_{s<->f}; the slow side is frozen. */
static void case_train_fast(const blob *in, FILE *out) {
  const int64_t *dm = BLOB_I(in, "dims", 7), N = dm[0], Din = dm[1], D = dm[2], K = dm[3];
  const int64_t Kt = dm[4], B = dm[5], S = dm[6], nA = D * Din, n = nA + Kt * D + 1;
  const double *hp = BLOB_D(in, "hyper", 6);
  const float *x = BLOB_F(in, "x", N * Din), *As = BLOB_F(in, "A_S", nA);
  const float *Ws = BLOB_F(in, "W_S", Kt * D), *ss = BLOB_F(in, "sigma_S", 1);
  const int64_t *y = BLOB_I(in, "y", N), *batches = BLOB_I(in, "batches", S * B);
  float *p = talloc(n, 4), *g = talloc(n, 4), *buf = talloc(n, 4);
  memcpy(p, BLOB_F(in, "A_F", nA), (size_t)nA * 4);
  memcpy(p + nA, BLOB_F(in, "W_F", Kt * D), (size_t)(Kt * D) * 4);
  p[n - 1] = BLOB_F(in, "sigma_F", 1)[0];
  double *losses = talloc(S, 8), *parts = talloc(3 * S, 8);
  train_ws t = ws_create(B, Din, D, Kt, learn_crossclass_scratch(K, Kt, B, D));
  const learn_sgd_cfg cfg = {hp[1], 0.0, 0};
  const learn_param_group all = {0, n, 1.0, hp[2]};
  for (int64_t s = 0; s < S; s++) {
    gather(t.xb, t.yb, x, y, batches + s * B, B, Din);
    feat_forward(t.phi, t.xb, p, B, Din, D);
    feat_forward(t.phi2, t.xb, As, B, Din, D);
    memset(g, 0, (size_t)n * 4);
    float *wf = p + nA, *sf = p + n - 1, *dwf = g + nA, *dsf = g + n - 1;
    double ce = head_ce(&t, dwf, dsf, wf, sf, B, Kt, D);
    double lc = learn_align_loss(t.dphi, t.phi, t.phi2, B, D, hp[4]);
    double cc = learn_crossclass_loss(dwf, dsf, t.dphi, t.lscr, NULL, wf, sf, Ws, ss, t.phi, t.phi2,
                                      t.yb, K, Kt, B, D, hp[5]);
    feat_backward(g, t.dphi, t.xb, B, Din, D);
    losses[s] = ce + hp[4] * lc + hp[5] * cc;
    parts[3 * s] = ce, parts[3 * s + 1] = lc, parts[3 * s + 2] = cc;
    learn_sgd_step(p, buf, g, s, learn_lr_cosine(hp[0], 0.0, (int64_t)hp[3], s), &cfg, &all, 1);
  }
  blob_put(out, "losses", BLOB_F64, losses, S);
  blob_put(out, "parts", BLOB_F64, parts, 3 * S);
  blob_put(out, "params", BLOB_F32, p, n);
  ws_destroy(&t);
  free(p), free(g), free(buf), free(losses), free(parts);
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    void (*run)(const blob *, FILE *);
  } cases[] = {{"cosine", case_cosine},         {"ce", case_ce},
               {"transfer", case_transfer},     {"align", case_align},
               {"crossclass", case_crossclass}, {"optim", case_optim},
               {"sched", case_sched},           {"train_slow", case_train_slow},
               {"train_fast", case_train_fast}};
  if (argc != 4) {
    fprintf(stderr, "usage: learn_driver CASE in.blob out.blob\n");
    return 2;
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (strcmp(argv[1], cases[i].name) != 0) continue;
    blob in;
    blob_read(argv[2], &in);
    FILE *out = blob_create(argv[3]);
    cases[i].run(&in, out);
    blob_free(&in);
    if (fclose(out) != 0) blob_die("cannot close", argv[3]);
    return 0;
  }
  fprintf(stderr, "learn_driver: unknown case '%s'\n", argv[1]);
  return 2;
}
