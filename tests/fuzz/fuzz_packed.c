/* fuzz_packed.c: the packed-dataset reader (src/data/packed.c, opened through a "folder"
 * source whose root is the file) on HDF5 files built from the input (h5_script.h): wrong kinds
 * and schema versions, labels out of range, path and offset tables of the wrong length,
 * offsets past the blob, images that do not decode.
 *
 * A dataset that opens is walked: every label, path and class name, and up to 16 samples
 * decoded from the blob. */
#include <stdlib.h>

#include "fuzz.h"
#include "h5_script.h"
#include "safecl/data.h"
#include "safecl/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path(0, "packed.h5");
  if (h5_script_build(path, (const char *)data, size) != 0) return 0;
  data_source src = {
      .format = "folder", .root = path, .split = "train", .per_class = 1, .image_size = 32};
  data_dataset *ds = NULL;
  if (data_dataset_open(&src, &ds) == SCL_OK) {
    const int64_t n = data_dataset_count(ds), k = data_dataset_num_classes(ds);
    for (int64_t i = 0; i < n; i++) {
      const int64_t label = data_dataset_label(ds, i);
      if (label < 0 || label >= k || !data_dataset_path(ds, i)) abort();
    }
    for (int64_t c = 0; c < k; c++)
      if (!data_dataset_class_name(ds, c)) abort();
    data_image img = {0};
    for (int64_t i = 0; i < n && i < 16; i++)
      if (data_dataset_read(ds, i, &img) != SCL_OK) fuzz_clear();
    io_image_free(&img);
  }
  data_dataset_close(&ds);
  fuzz_clear();
  return 0;
}
