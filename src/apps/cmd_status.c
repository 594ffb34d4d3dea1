/* cmd_status.c: `safecl status RUN_DIR [--reindex]`: argv to orch_status_print and
 * orch_index_rebuild. Works while a sweep or a train runs (read-only) and without MPI. Exit
 * status 2 when RUN_DIR holds no run (or is not a directory) or the arguments are wrong. */
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
          "  A sweep's RUN_DIR: trials by state, what each group of the latest job is doing,\n"
          "  throughput and ETA, from its ledgers and trial files (safe while the sweep runs).\n"
          "  A safecl train run.dir: the trial, session, last checkpoint, ETA, finished or not.\n"
          "  Either way: running, or dead (its heartbeat old, its pid gone) or ended.\n"
          "  --reindex  also rebuild RUN_DIR/index.h5 from the ledgers and trial files.\n"
          "  Exit status: 0 shown, 1 a file could not be read, 2 RUN_DIR holds no run.\n");
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
  if (err == SCL_ERR_ARG) {
    scl_log_error_traceback();
    return 2;
  }
  if (!err && reindex) {
    err = orch_index_rebuild(dir);
    if (!err) printf("index: %s/index.h5 rebuilt\n", dir);
  }
  if (err) scl_log_error_traceback();
  return err ? 1 : 0;
}
