/* fuzz_safetensors.c: the safetensors reader (src/io/safetensors.c) on arbitrary bytes.
 *
 * The input is written to a file and opened; when it validates, every tensor is converted to
 * fp32 and every metadata entry listed, so a header that passes validation but lies about the
 * data shows up as an out-of-bounds read under ASan. */
#include <stdlib.h>

#include "fuzz.h"
#include "safecl/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_path(0, "input.safetensors");
  if (fuzz_write(path, data, size) != 0) return 0;
  io_safetensors *st = NULL;
  if (io_safetensors_open(path, &st) == SCL_OK) {
    for (int i = 0; i < io_safetensors_count(st); i++) {
      const io_tensor_info *t = io_safetensors_at(st, i);
      if (io_safetensors_find(st, t->name) == NULL) abort();
      float *dst = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *dst);
      if (dst && io_safetensors_read_f32(st, t, dst, t->numel) != SCL_OK) abort();
      free(dst);
    }
    const char *key = NULL, *value = NULL;
    for (int i = 0; io_safetensors_metadata_at(st, i, &key, &value); i++)
      if (io_safetensors_metadata(st, key) == NULL) abort();
    io_safetensors_close(&st);
  }
  fuzz_clear();
  return 0;
}
