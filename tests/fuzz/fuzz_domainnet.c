/* fuzz_domainnet.c: DomainNet list files (src/data/domainnet.c) on arbitrary bytes.
 *
 * The input is ROOT/a_train.txt of a dataset with the one domain "a". Three image files exist
 * under ROOT (img/0.png, img/1.jpg, img/sub/2.png, empty: open only stats them), so a list can
 * name files that exist, files that do not, and paths that leave ROOT. A list that opens is
 * walked: every sample's label, path and domain, and every class name. */
#include <stdlib.h>

#include "fuzz.h"
#include "safecl/data.h"

static void make_root(void) {
  static int done;
  if (done) return;
  done = 1;
  fuzz_mkdir(fuzz_path(0, "root"));
  fuzz_mkdir(fuzz_path(0, "root/img"));
  fuzz_mkdir(fuzz_path(0, "root/img/sub"));
  fuzz_write(fuzz_path(0, "root/img/0.png"), "", 0);
  fuzz_write(fuzz_path(0, "root/img/1.jpg"), "", 0);
  fuzz_write(fuzz_path(0, "root/img/sub/2.png"), "", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  make_root();
  if (fuzz_write(fuzz_path(1, "root/a_train.txt"), data, size) != 0) return 0;
  data_source src = {.format = "domainnet",
                     .root = fuzz_path(2, "root"),
                     .split = "train",
                     .domains = "a",
                     .n_classes = 0,
                     .per_class = 1,
                     .image_size = 32};
  data_dataset *ds = NULL;
  if (data_dataset_open(&src, &ds) == SCL_OK) {
    const int64_t n = data_dataset_count(ds), k = data_dataset_num_classes(ds);
    for (int64_t i = 0; i < n; i++) {
      const int64_t label = data_dataset_label(ds, i);
      if (label < 0 || label >= k || !data_dataset_path(ds, i) || data_dataset_domain(ds, i) != 0)
        abort(); /* open promised labels in [0, classes) */
    }
    for (int64_t c = 0; c < k; c++)
      if (!data_dataset_class_name(ds, c)) abort();
  }
  data_dataset_close(&ds);
  fuzz_clear();
  return 0;
}
