/* cmd_train.c: `safecl train CONFIG [key=value ...]`: argv to run_trial. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/trial.h"

int cmd_train(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: safecl train [CONFIG.cfg] [key=value ...]\n\n");
      cfg_print_help(&run_trial_schema, stdout);
      return 0;
    }
  }
  const char *path = NULL;
  int first = 1;
  if (argc > 1 && !cfg_is_override(argv[1])) {
    path = argv[1];
    first = 2;
  }
  run_trial_cfg cfg = {0};
  scl_err err = cfg_load(&run_trial_schema, path, argc - first, argv + first, &cfg);
  if (!err) err = run_trial(&cfg);
  if (err) scl_log_error_traceback();
  cfg_free(&run_trial_schema, &cfg);
  return err ? 1 : 0;
}
