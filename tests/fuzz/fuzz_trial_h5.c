/* fuzz_trial_h5.c: the report's trial.h5 reader (src/report/report_scan.c) and everything
 * report_run builds from it (groups, cells, table and CSV output), on trial files built from
 * the input (h5_script.h): damaged attributes, predictor names that are paths, accuracy curves
 * of the wrong length, class orders of any size, configs that are not key = value text.
 *
 * The file is TRIAL/trial.h5 and the report runs on TRIAL as a `safecl train` run.dir, in each
 * output format, to /dev/null. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "h5_script.h"
#include "safecl/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *dir = fuzz_path(0, "trial");
  fuzz_mkdir(dir);
  if (h5_script_build(fuzz_path(1, "trial/trial.h5"), (const char *)data, size) != 0) return 0;
  FILE *out = fopen("/dev/null", "w");
  if (!out) return 0;
  const char *dirs[1] = {dir};
  report_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.dirs = dirs;
  opts.n_dirs = 1;
  opts.forgetting = 1;
  /* every output format; a file that reports in one reports in all */
  for (int format = REPORT_MD; format <= REPORT_CSV; format++) {
    opts.format = (report_format)format;
    if (report_run(&opts, out) != SCL_OK) {
      if (format != REPORT_MD) abort();
      break;
    }
  }
  fclose(out);
  fuzz_clear();
  return 0;
}
