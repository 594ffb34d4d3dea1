/* cmd_features.c: `safecl features [CONFIG ...] [key=value ...]` (any order, as `safecl train`):
 * argv to run_features. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/features.h"

int cmd_features(int argc, char **argv) {
  static const char *const flags[] = {"--help", "--print-config"};
  int found[2], n = 0;
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!rest) {
    fprintf(stderr, "safecl features: out of memory\n");
    return 1;
  }
  int code = apps_config_args("features", argc, argv, flags, 2, found, rest, &n);
  if (code || found[0]) {
    if (!code) {
      printf(
          "usage: safecl features [CONFIG.cfg | key=value | --print-config] ...\n"
          "  Files and overrides in any order, applied left to right (as safecl train);\n"
          "  --print-config prints the effective config and exits.\n\n");
      cfg_print_help(&run_features_schema, stdout);
    }
    free(rest);
    return code;
  }
  run_features_cfg cfg = {0};
  char *text = NULL;
  scl_err err = cfg_load_args(&run_features_schema, n, rest, &cfg);
  if (!err) err = cfg_dump(&run_features_schema, &cfg, &text);
  if (!err && found[1])
    fputs(text, stdout);
  else if (!err)
    err = run_features(&cfg, text);
  if (err) scl_log_error_traceback();
  free(text);
  cfg_free(&run_features_schema, &cfg);
  free(rest);
  return err ? 1 : 0;
}
