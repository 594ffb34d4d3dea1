/* cmd_plan.c: `safecl plan [CONFIG.cfg ...] [key=value ...]` (any order, as `safecl train`): a
 * trial's work and estimated time, after checking that its weights and dataset can be read.
 *
 * Rates: measured on this machine now (the default), a nominal per-rank GFLOP/s (--gflops), or a
 * calibration file (--calibration FILE) that `safecl plan --calibrate` measured once on a quiet
 * node; --ranks G prices the trial on a data-parallel group of G such ranks. The options with a
 * value are taken off the line here ("--ranks 4" or "--ranks=4"); the rest goes to
 * apps_config_args. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/plan.h"

typedef struct plan_opts {
  const char *ranks, *gflops, *calibration;
} plan_opts;

/* Takes --ranks, --gflops and --calibration (with their values) out of argv; 2 on a missing
 * value. */
static int take_value_opts(int *argc, char **argv, plan_opts *o) {
  static const char *const names[] = {"--ranks", "--gflops", "--calibration"};
  const char **slots[] = {&o->ranks, &o->gflops, &o->calibration};
  int k = 1;
  for (int i = 1; i < *argc; i++) {
    if (!strcmp(argv[i], "--")) {
      while (i < *argc) argv[k++] = argv[i++];
      break;
    }
    int hit = 0;
    for (int n = 0; n < 3 && !hit; n++) {
      size_t len = strlen(names[n]);
      if (strncmp(argv[i], names[n], len)) continue;
      if (argv[i][len] == '=') {
        *slots[n] = argv[i] + len + 1;
        hit = 1;
      } else if (!argv[i][len]) {
        if (i + 1 >= *argc) {
          fprintf(stderr, "safecl plan: %s needs a value (safecl plan --help)\n", names[n]);
          return 2;
        }
        *slots[n] = argv[++i];
        hit = 1;
      }
    }
    if (!hit) argv[k++] = argv[i];
  }
  *argc = k;
  argv[k] = NULL;
  return 0;
}

static void usage(void) {
  printf(
      "usage: safecl plan [CONFIG.cfg | key=value | option] ...\n\n"
      "Checks that backbone.weights and the dataset can be read (an error names the key and\n"
      "the path; empty backbone.weights is a warning: the trial would run on random weights),\n"
      "counts the trial's work per session (training passes, feature extraction, evaluation,\n"
      "ridge classifiers) and prints the estimated time. Arguments as for `safecl train`:\n"
      "files and overrides in any order, applied left to right.\n\n"
      "  --ranks G            price the trial on a group of G ranks (mpirun -np G safecl\n"
      "                       train): every phase divided by G, the ideal (a lower bound)\n"
      "  --gflops X           each rank sustains X GFLOP/s (e.g. a cluster node's measured\n"
      "                       rate) instead of rates measured on this machine now\n"
      "  --calibrate          measure this machine's ViT forward, dgemm and dsyevd rates (for\n"
      "                       the config's backbone.arch and train.threads) and save them to\n"
      "                       the calibration file; run it once on an idle compute node\n"
      "  --calibration FILE   price with the rates saved in FILE; with --calibrate, where to\n"
      "                       save them (default: $SAFECL_CALIBRATION, else\n"
      "                       $XDG_CACHE_HOME/safecl/calibration, else\n"
      "                       ~/.cache/safecl/calibration)\n"
      "  --print-config       print the effective config and exit\n\n"
      "Without --gflops or --calibration the rates are measured now, on this machine at its\n"
      "current load.\n");
}

/* Parses a positive number; 0 on success. */
static int positive(const char *opt, const char *text, double *v) {
  char *end = NULL;
  errno = 0;
  *v = strtod(text, &end);
  if (end == text || *end || errno || !isfinite(*v) || *v <= 0) {
    fprintf(stderr, "safecl plan: %s %s: expected a positive number\n", opt, text);
    return 2;
  }
  return 0;
}

static scl_err calibrate(const run_trial_cfg *cfg, const char *path) {
  run_plan_rates rates;
  SCL_CALL(run_plan_measure(cfg, &rates));
  SCL_CALL(run_plan_rates_save(path, cfg, &rates));
  printf(
      "calibration: forward %.1f GFLOP/s (%s), dgemm %.1f GFLOP/s, dsyevd(512) %.3f s\n"
      "saved to %s (use: safecl plan --calibration %s ...)\n",
      rates.forward_gflop_per_s, cfg->arch, rates.dgemm_gflop_per_s, rates.eig_seconds_512, path,
      path);
  return SCL_OK;
}

static scl_err price(const run_trial_cfg *cfg, const plan_opts *o, double gflops, int ranks) {
  run_plan_rates rates;
  run_plan plan;
  run_plan_facts facts;
  SCL_CALL(run_plan_check_inputs(cfg, &facts));
  scl_err err = SCL_OK;
  if (o->gflops)
    run_plan_rates_nominal(cfg, gflops, &rates);
  else if (o->calibration)
    err = run_plan_rates_load(o->calibration, cfg, &rates);
  else
    err = run_plan_measure(cfg, &rates);
  if (!err) err = run_plan_count(cfg, &facts, &rates, &plan);
  run_plan_facts_free(&facts);
  if (err) return SCL_TRACE(err);
  run_plan_spread(&plan, ranks);
  run_plan_print(cfg, &plan, stdout);
  return SCL_OK;
}

int cmd_plan(int argc, char **argv) {
  static const char *const flags[] = {"--help", "--print-config", "--calibrate"};
  int found[3], n = 0;
  plan_opts o = {0};
  char **args = calloc((size_t)argc + 1, sizeof *args),
       **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!args || !rest) {
    fprintf(stderr, "safecl plan: out of memory\n");
    free(args);
    free(rest);
    return 1;
  }
  memcpy(args, argv, (size_t)argc * sizeof *args);
  int code = take_value_opts(&argc, args, &o);
  if (!code) code = apps_config_args("plan", argc, args, flags, 3, found, rest, &n);
  double gflops = 0, ranks = 1;
  if (!code && !found[0] && o.gflops) code = positive("--gflops", o.gflops, &gflops);
  if (!code && !found[0] && o.ranks) {
    code = positive("--ranks", o.ranks, &ranks);
    if (!code && (ranks != floor(ranks) || ranks > 65536)) {
      fprintf(stderr, "safecl plan: --ranks %s: expected a whole number of ranks (1 to 65536)\n",
              o.ranks);
      code = 2;
    }
  }
  if (!code && o.gflops && o.calibration && !found[2]) {
    fprintf(stderr, "safecl plan: give --gflops or --calibration, not both\n");
    code = 2;
  }
  if (code || found[0]) {
    if (!code) usage();
    free(args);
    free(rest);
    return code;
  }
  run_trial_cfg cfg = {0};
  scl_err err = cfg_load_args(&run_trial_schema, n, rest, &cfg);
  if (!err && found[1]) {
    char *text = NULL;
    err = cfg_dump(&run_trial_schema, &cfg, &text);
    if (!err) fputs(text, stdout);
    free(text);
  } else if (!err && found[2]) {
    char path[4096];
    run_plan_calibration_path(path, sizeof path);
    err = calibrate(&cfg, o.calibration ? o.calibration : path);
  } else if (!err) {
    err = price(&cfg, &o, gflops, (int)ranks);
  }
  if (err) scl_log_error_traceback();
  cfg_free(&run_trial_schema, &cfg);
  free(args);
  free(rest);
  return err ? 1 : 0;
}
