/* optim.c: SGD, Adam and AdamW over one flat parameter array, and the epoch lr schedules.
 *
 * Each update replays torch 1.13's _single_tensor_* code operation by operation in fp32 (the
 * scalars lr, momentum, betas and bias corrections in double and cast to fp32 where torch passes
 * them to a float kernel), so a step agrees with torch to an ulp or two per element; the only
 * freedom taken is evaluation order inside one expression, which the parity test bounds. State
 * (momentum buffer, Adam moments) has the layout of the parameters, so each step is one loop per
 * parameter group and the state checkpoint is a copy. Parameter groups are ranges of the flat
 * array with their own lr scale and weight decay; elements outside every group are frozen. The
 * cosine schedule uses the closed form; the recursive form torch evaluates is provided too, and
 * tests/learn shows both agree with torch's stored lr. */
#include "safecl/learn.h"

#include <math.h>

static const double kPi = 3.14159265358979323846; /* math.pi */

static void sgd_group(float *p, float *buf, const float *g, int64_t n, int64_t step, double lr,
                      double wd, const learn_sgd_cfg *cfg) {
  const float fwd = (float)wd, fmom = (float)cfg->momentum;
  const float fdamp = (float)(1.0 - cfg->dampening), flr = (float)(-lr);
  for (int64_t i = 0; i < n; i++) {
    float d = wd != 0.0 ? g[i] + fwd * p[i] : g[i];
    if (cfg->momentum != 0.0) {
      float b = step == 0 ? d : buf[i] * fmom + fdamp * d;
      buf[i] = b;
      d = cfg->nesterov ? d + fmom * b : b;
    }
    p[i] = p[i] + flr * d;
  }
}

void learn_sgd_step(float *param, float *buf, const float *grad, int64_t step, double lr,
                    const learn_sgd_cfg *cfg, const learn_param_group *groups, int64_t ngroups) {
  for (int64_t k = 0; k < ngroups; k++) {
    const learn_param_group *gr = &groups[k];
    const int64_t o = gr->offset;
    sgd_group(param + o, buf ? buf + o : NULL, grad + o, gr->count, step, lr * gr->lr_scale,
              gr->weight_decay, cfg);
  }
}

static void adam_group(float *p, float *m, float *v, const float *g, int64_t n, int64_t step,
                       double lr, double wd, const learn_adam_cfg *cfg) {
  const double bc1 = 1.0 - pow(cfg->beta1, (double)step);
  const double bc2 = 1.0 - pow(cfg->beta2, (double)step);
  const float neg_step = (float)(-(lr / bc1)), bc2_sqrt = (float)sqrt(bc2);
  const float b1 = (float)cfg->beta1, b2 = (float)cfg->beta2;
  const float a1 = (float)(1.0 - cfg->beta1), a2 = (float)(1.0 - cfg->beta2);
  const float eps = (float)cfg->eps, fwd = (float)wd, decay = (float)(1.0 - lr * wd);
  const int coupled = !cfg->decoupled && wd != 0.0, decoupled = cfg->decoupled;
  for (int64_t i = 0; i < n; i++) {
    float gi = coupled ? g[i] + fwd * p[i] : g[i];
    float pi = decoupled ? p[i] * decay : p[i];
    float mi = m[i] * b1 + a1 * gi;
    float vi = v[i] * b2 + a2 * gi * gi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + neg_step * mi / denom; /* addcdiv: self + (value * t1) / t2 */
  }
}

void learn_adam_step(float *param, float *m, float *v, const float *grad, int64_t step, double lr,
                     const learn_adam_cfg *cfg, const learn_param_group *groups, int64_t ngroups) {
  for (int64_t k = 0; k < ngroups; k++) {
    const learn_param_group *gr = &groups[k];
    const int64_t o = gr->offset;
    adam_group(param + o, m + o, v + o, grad + o, gr->count, step, lr * gr->lr_scale,
               gr->weight_decay, cfg);
  }
}

double learn_lr_cosine(double base, double eta_min, int64_t T_max, int64_t epoch) {
  return eta_min + (base - eta_min) * (1.0 + cos((double)epoch * kPi / (double)T_max)) / 2.0;
}

double learn_lr_cosine_torch(double base, double eta_min, int64_t T_max, int64_t epoch) {
  double lr = base;
  const double T = (double)T_max;
  for (int64_t e = 1; e <= epoch; e++) {
    if ((e - 1 - T_max) % (2 * T_max) == 0)
      lr = lr + (base - eta_min) * (1.0 - cos(kPi / T)) / 2.0;
    else
      lr = (1.0 + cos(kPi * (double)e / T)) / (1.0 + cos(kPi * (double)(e - 1) / T)) *
               (lr - eta_min) +
           eta_min;
  }
  return lr;
}

double learn_lr_at(const learn_lr_schedule *s, int64_t epoch) {
  if (s->kind == LEARN_LR_COSINE) return learn_lr_cosine(s->base, s->eta_min, s->T_max, epoch);
  return s->base;
}
