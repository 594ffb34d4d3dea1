/* cmd_status.c: `safecl status RUN_DIR [--reindex]`: argv to orch_status_print and
 * orch_index_rebuild. Works while a sweep runs (read-only) and without MPI. */
#include <stdio.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/orch.h"

int cmd_status(int argc, char **argv) {
  const char *dir = NULL;
  int reindex = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf(
          "usage: safecl status RUN_DIR [--reindex]\n"
          "  Trials by state, what each group of the latest job is doing, throughput and ETA,\n"
          "  from RUN_DIR's ledgers and trial files (safe while the sweep runs).\n"
          "  --reindex  also rebuild RUN_DIR/index.h5 from the ledgers and trial files.\n");
      return 0;
    }
    if (!strcmp(argv[i], "--reindex")) {
      reindex = 1;
    } else if (!dir && argv[i][0] != '-') {
      dir = argv[i];
    } else {
      fprintf(stderr, "safecl status: unexpected argument '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (!dir) {
    fprintf(stderr, "usage: safecl status RUN_DIR [--reindex]\n");
    return 2;
  }
  scl_err err = orch_status_print(dir, stdout);
  if (!err && reindex) {
    err = orch_index_rebuild(dir);
    if (!err) printf("index: %s/index.h5 rebuilt\n", dir);
  }
  if (err) scl_log_error_traceback();
  return err ? 1 : 0;
}
