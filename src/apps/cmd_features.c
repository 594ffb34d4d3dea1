/* cmd_features.c: `safecl features [CONFIG] [key=value ...]`: argv to run_features. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/features.h"

int cmd_features(int argc, char **argv) {
  const char *path = NULL;
  int first = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: safecl features [CONFIG.cfg] [key=value ...]\n\n");
      cfg_print_help(&run_features_schema, stdout);
      return 0;
    }
  }
  if (argc > 1 && !cfg_is_override(argv[1])) {
    path = argv[1];
    first = 2;
  }
  run_features_cfg cfg = {0};
  char *text = NULL;
  scl_err err = cfg_load(&run_features_schema, path, argc - first, argv + first, &cfg);
  if (!err) err = cfg_dump(&run_features_schema, &cfg, &text);
  if (!err) err = run_features(&cfg, text);
  if (err) scl_log_error_traceback();
  free(text);
  cfg_free(&run_features_schema, &cfg);
  return err ? 1 : 0;
}
