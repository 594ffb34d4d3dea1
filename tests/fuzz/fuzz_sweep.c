/* fuzz_sweep.c: the sweep file reader (src/orch/sweep_file.c, sweep_load.c) on arbitrary bytes,
 * with command-line overrides after a NUL (fuzz_split.h).
 *
 * Next to the input sit three small trial config files, b.cfg, d.cfg and m.cfg, that base,
 * datasets and methods entries can name (the seed corpus does). A sweep that loads is dumped
 * and the dump loaded back, as `safecl sweep` records and rereads it. Planning (which opens
 * datasets and builds models) is not fuzzed: it reads no bytes of the sweep file itself. */
#include <stdlib.h>

#include "fuzz.h"
#include "fuzz_split.h"
#include "safecl/orch.h"

static void write_configs(void) {
  static int done;
  if (done) return;
  done = 1;
  static const char b[] = "arch = \"vit_tiny\";\nthreads = 1;\n";
  static const char d[] = "dataset = { format = \"synthetic\"; init_cls = 2; increment = 2; };\n";
  static const char m[] = "method = { name = \"simplecil\"; };\n";
  fuzz_write(fuzz_path(1, "b.cfg"), b, sizeof b - 1);
  fuzz_write(fuzz_path(1, "d.cfg"), d, sizeof d - 1);
  fuzz_write(fuzz_path(1, "m.cfg"), m, sizeof m - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  write_configs();
  fuzz_split in;
  if (fuzz_split_input(data, size, &in) != 0) return 0;
  const char *path = fuzz_path(0, "sweep.cfg");
  if (fuzz_write(path, data, in.file_len) == 0) {
    orch_sweep *s = NULL;
    if (orch_sweep_load(path, in.n_args, in.args, &s) == SCL_OK) {
      char *text = NULL;
      if (orch_sweep_dump(s, &text) == SCL_OK) {
        const char *again = fuzz_path(2, "dump.cfg");
        orch_sweep *s2 = NULL;
        if (fuzz_write(again, text, strlen(text)) == 0 &&
            orch_sweep_load(again, 0, NULL, &s2) != SCL_OK)
          abort(); /* the dump of a valid sweep must load back */
        orch_sweep_destroy(&s2);
        free(text);
      }
    }
    orch_sweep_destroy(&s);
  }
  fuzz_split_free(&in);
  fuzz_clear();
  return 0;
}
