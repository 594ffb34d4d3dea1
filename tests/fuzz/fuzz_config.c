/* fuzz_config.c: the trial's config reader (src/config/read_file.c and config.c) on arbitrary
 * bytes: the integer-literal rewrite, libconfig's parser, @include, and validation of every key
 * against the trial's key table, file and command-line overrides alike (fuzz_split.h).
 *
 * The file lives alone in this process's directory, so an @include reaches the file itself
 * (recursion) or names a missing file. A config that loads is dumped, as provenance and trial
 * identity do. */
#include <stdlib.h>

#include "fuzz.h"
#include "fuzz_split.h"
#include "safecl/config.h"
#include "safecl/trial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_split in;
  if (fuzz_split_input(data, size, &in) != 0) return 0;
  const char *path = fuzz_path(0, "input.cfg");
  if (fuzz_write(path, data, in.file_len) == 0) {
    run_trial_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    if (cfg_load(&run_trial_schema, path, in.n_args, in.args, &cfg) == SCL_OK) {
      char *text = NULL;
      if (cfg_dump(&run_trial_schema, &cfg, &text) == SCL_OK) free(text);
      text = NULL;
      if (cfg_dump_identity(&run_trial_schema, &cfg, &text) == SCL_OK) free(text);
    }
    cfg_free(&run_trial_schema, &cfg);
  }
  fuzz_split_free(&in);
  fuzz_clear();
  return 0;
}
