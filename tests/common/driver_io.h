/* driver_io.h: what the test drivers (the C programs a Python reference test runs) share: raw
 * binary files in and out, with errors that name the file, and the end of main (traceback on
 * failure). One copy instead of one per driver. */
#ifndef SAFECL_TESTS_DRIVER_IO_H
#define SAFECL_TESTS_DRIVER_IO_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/vit.h"

/* Reads exactly count items of size bytes from path into dst. */
static inline scl_err driver_read(const char *path, void *dst, size_t size, size_t count) {
  FILE *f = fopen(path, "rb");
  SCL_CHECK(f, SCL_ERR_IO, "%s: cannot open", path);
  size_t got = fread(dst, size, count, f);
  fclose(f);
  SCL_CHECK(got == count, SCL_ERR_FORMAT, "%s: %zu items of %zu bytes, expected %zu", path, got,
            size, count);
  return SCL_OK;
}

/* Reads exactly bytes bytes of dir/name into dst. */
static inline scl_err driver_read_in(const char *dir, const char *name, void *dst, size_t bytes) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return driver_read(path, dst, 1, bytes);
}

/* Writes bytes of src to dir/name (dir NULL: name is the path). */
static inline scl_err driver_write(const char *dir, const char *name, const void *src,
                                   size_t bytes) {
  char path[1024];
  snprintf(path, sizeof path, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
  FILE *f = fopen(path, "wb");
  SCL_CHECK(f, SCL_ERR_IO, "%s: cannot create", path);
  size_t put = fwrite(src, 1, bytes, f);
  int closed = fclose(f);
  SCL_CHECK(put == bytes && closed == 0, SCL_ERR_IO, "%s: short write", path);
  return SCL_OK;
}

/* A small ViT given on the command line: name "custom", 3 channels, LayerNorm eps 1e-6; the
 * shape comes from the options of driver_vit_option. */
static inline void driver_vit_defaults(vit_config *vc) {
  memset(vc, 0, sizeof *vc);
  snprintf(vc->name, sizeof vc->name, "custom");
  vc->in_chans = 3;
  vc->ln_eps = 1e-6f;
}

/* 1 if k is one of --width, --depth, --heads, --img, --patch, --mlp (and sets it from v). */
static inline int driver_vit_option(vit_config *vc, const char *k, const char *v) {
  static const char *const keys[] = {"--width", "--depth", "--heads", "--img", "--patch", "--mlp"};
  int64_t *const fields[] = {&vc->width,    &vc->depth,      &vc->heads,
                             &vc->img_size, &vc->patch_size, &vc->mlp_hidden};
  for (int i = 0; i < 6; i++)
    if (!strcmp(k, keys[i])) {
      *fields[i] = atol(v);
      return 1;
    }
  return 0;
}

/* The exit status of a driver's main: 0 on success; 1 with the traceback on stderr. */
static inline int driver_exit(scl_err err) {
  if (!err) return 0;
  scl_log_error_traceback();
  return 1;
}

#endif /* SAFECL_TESTS_DRIVER_IO_H */
