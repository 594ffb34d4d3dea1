/* fuzz_published.c: the published-numbers CSV reader (src/report/report_published.c) on
 * arbitrary bytes: quoting, embedded newlines, the header map, numbers and duplicate keys. */
#include <stdlib.h>
#include <string.h>

#include "../../src/report/report_internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path(0, "published.csv");
  if (fuzz_write(path, data, size) != 0) return 0;
  report_opts opts;
  memset(&opts, 0, sizeof opts);
  report_data d;
  memset(&d, 0, sizeof d);
  d.opts = &opts;
  if (report_published_load(&d, path) == SCL_OK) {
    for (int i = 0; i < d.n_pubs; i++)
      if (!d.pubs[i].source || !d.pubs[i].method || !d.pubs[i].dataset) abort();
  }
  report_data_free(&d);
  fuzz_clear();
  return 0;
}
