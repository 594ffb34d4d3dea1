/* fuzz_image.c: the JPEG and PNG decoders (src/io/image.c) on arbitrary bytes.
 *
 * The decoder is fed from memory, as the packed-dataset reader feeds it; the format comes
 * from the magic bytes, so one target covers both decoders (the seed corpus holds a small
 * image of each). A decoded image must have the size it claims. */
#include <stdlib.h>

#include "fuzz.h"
#include "safecl/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  data_image img = {0};
  if (io_image_decode(data, size, "fuzz-input", &img) == SCL_OK) {
    if (img.w < 1 || img.h < 1 || (size_t)img.w * (size_t)img.h * 3 > img.cap) abort();
  }
  io_image_free(&img);
  fuzz_clear();
  return 0;
}
