/* cmd_plan.c: `safecl plan [CONFIG.cfg ...] [key=value ...]`: a trial's work and estimated time. */
#include <stdio.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/plan.h"

int cmd_plan(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf(
          "usage: safecl plan [CONFIG.cfg ...] [key=value ...]\n\n"
          "Counts the trial's work per session (training passes, feature extraction,\n"
          "evaluation, ridge classifiers), measures this machine's ViT forward, dgemm and\n"
          "dsyevd rates, and prints the estimated time. Keys as for `safecl train`.\n");
      return 0;
    }
  int first = 1;
  while (first < argc && !cfg_is_override(argv[first])) first++;
  run_trial_cfg cfg = {0};
  run_plan_rates rates;
  run_plan plan;
  scl_err err = cfg_load_files(&run_trial_schema, (const char *const *)argv + 1, first - 1,
                               argc - first, argv + first, &cfg);
  if (!err) err = run_plan_measure(&cfg, &rates);
  if (!err) err = run_trial_plan(&cfg, &rates, &plan);
  if (!err) run_plan_print(&cfg, &plan, stdout);
  if (err) scl_log_error_traceback();
  cfg_free(&run_trial_schema, &cfg);
  return err ? 1 : 0;
}
