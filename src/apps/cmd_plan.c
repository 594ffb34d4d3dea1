/* cmd_plan.c: `safecl plan [CONFIG.cfg ...] [key=value ...]` (any order, as `safecl train`): a
 * trial's work and estimated time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/plan.h"

int cmd_plan(int argc, char **argv) {
  static const char *const flags[] = {"--help", "--print-config"};
  int found[2], n = 0;
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!rest) {
    fprintf(stderr, "safecl plan: out of memory\n");
    return 1;
  }
  int code = apps_config_args("plan", argc, argv, flags, 2, found, rest, &n);
  if (code || found[0]) {
    if (!code)
      printf(
          "usage: safecl plan [CONFIG.cfg | key=value | --print-config] ...\n\n"
          "Counts the trial's work per session (training passes, feature extraction,\n"
          "evaluation, ridge classifiers), measures this machine's ViT forward, dgemm and\n"
          "dsyevd rates, and prints the estimated time. Arguments as for `safecl train`: files\n"
          "and overrides in any order, applied left to right; --print-config prints the\n"
          "effective config and exits.\n");
    free(rest);
    return code;
  }
  run_trial_cfg cfg = {0};
  run_plan_rates rates;
  run_plan plan;
  scl_err err = cfg_load_args(&run_trial_schema, n, rest, &cfg);
  if (!err && found[1]) {
    char *text = NULL;
    err = cfg_dump(&run_trial_schema, &cfg, &text);
    if (!err) fputs(text, stdout);
    free(text);
  } else {
    if (!err) err = run_plan_measure(&cfg, &rates);
    if (!err) err = run_trial_plan(&cfg, &rates, &plan);
    if (!err) run_plan_print(&cfg, &plan, stdout);
  }
  if (err) scl_log_error_traceback();
  cfg_free(&run_trial_schema, &cfg);
  free(rest);
  return err ? 1 : 0;
}
