/* data_tool.c: a thin command-line driver over the image and data modules, so that
 * test_parity.py can compare safecl's pixels with PIL/torchvision's on the same inputs.
 *
 * Raw image files are "<uint32 w><uint32 h>" (little-endian) followed by h*w*3 bytes HWC;
 * tensors are the float32 CHW array with no header.
 *   decode IN OUT.raw                               io_image_read
 *   resize bicubic|bilinear IN.raw DW DH OUT.raw    data_resize (full window)
 *   transform IN.raw RESIZE CROP OUT.f32 [m0 m1 m2 s0 s1 s2]   data_test_transform
 *   writepng IN.raw OUT.png                         io_image_write_png
 *   list FORMAT ROOT SPLIT                          one "label<TAB>path" line per sample
 * Exits 0 on success, 1 with the error's traceback on stderr otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/data.h"
#include "raw_image.h"

static scl_err raw_write(const char *path, const void *head, size_t head_len, const void *data,
                         size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return SCL_ERROR(SCL_ERR_IO, "%s: cannot create", path);
  int ok = (head_len == 0 || fwrite(head, head_len, 1, f) == 1) && fwrite(data, len, 1, f) == 1;
  if (fclose(f) != 0) ok = 0;
  if (!ok) return SCL_ERROR(SCL_ERR_IO, "%s: write failed", path);
  return SCL_OK;
}

static scl_err image_write(const char *path, const data_image *img) {
  uint32_t wh[2] = {(uint32_t)img->w, (uint32_t)img->h};
  SCL_CALL(raw_write(path, wh, sizeof wh, img->rgb, (size_t)img->w * img->h * 3));
  return SCL_OK;
}

static scl_err cmd_resize(char **argv, data_image *in, data_image *out) {
  data_filter f = strcmp(argv[0], "bicubic") == 0 ? DATA_FILTER_BICUBIC : DATA_FILTER_BILINEAR;
  SCL_CALL(raw_read(argv[1], in));
  int dw = atoi(argv[2]), dh = atoi(argv[3]);
  SCL_CALL(io_image_reserve(out, dw, dh));
  data_rect win = {0, 0, dw, dh};
  size_t bytes = data_resize_scratch_bytes(in->w, in->h, dw, dh, win, f);
  void *scratch = NULL;
  SCL_CALL(scl_alloc(bytes, "resize scratch", &scratch));
  scl_err err = data_resize(out->rgb, (size_t)dw * 3, in->rgb, in->w, in->h, (size_t)in->w * 3, dw,
                            dh, win, f, scratch, bytes);
  scl_free(scratch);
  SCL_CALL(err);
  SCL_CALL(image_write(argv[4], out));
  return SCL_OK;
}

static scl_err cmd_transform(int argc, char **argv, data_image *in) {
  SCL_CALL(raw_read(argv[0], in));
  int resize = atoi(argv[1]), crop = atoi(argv[2]);
  float mean[3], std[3];
  int norm = argc >= 10;
  for (int c = 0; norm && c < 3; c++) {
    mean[c] = strtof(argv[4 + c], NULL);
    std[c] = strtof(argv[7 + c], NULL);
  }
  size_t bytes = data_test_transform_scratch_bytes(in->w, in->h, resize, crop);
  size_t n = (size_t)3 * crop * crop;
  void *scratch = NULL, *out = NULL;
  SCL_CALL(scl_alloc(bytes, "transform scratch", &scratch));
  scl_err err = scl_alloc(n * sizeof(float), "tensor", &out);
  if (!err)
    err = data_test_transform(in, resize, crop, norm ? mean : NULL, norm ? std : NULL, out, scratch,
                              bytes);
  if (!err) err = raw_write(argv[3], NULL, 0, out, n * sizeof(float));
  scl_free(scratch);
  scl_free(out);
  SCL_CALL(err);
  return SCL_OK;
}

static scl_err cmd_list(char **argv) {
  data_source src = {.format = argv[0], .root = argv[1], .split = argv[2]};
  data_dataset *ds = NULL;
  SCL_CALL(data_dataset_open(&src, &ds));
  for (int64_t i = 0; i < data_dataset_count(ds); i++)
    printf("%lld\t%s\n", (long long)data_dataset_label(ds, i), data_dataset_path(ds, i));
  data_dataset_close(&ds);
  return SCL_OK;
}

static scl_err run(int argc, char **argv, data_image *a, data_image *b) {
  const char *cmd = argv[1];
  if (strcmp(cmd, "decode") == 0 && argc == 4) {
    SCL_CALL(io_image_read(argv[2], a));
    SCL_CALL(image_write(argv[3], a));
  } else if (strcmp(cmd, "resize") == 0 && argc == 7) {
    SCL_CALL(cmd_resize(argv + 2, a, b));
  } else if (strcmp(cmd, "transform") == 0 && (argc == 6 || argc == 12)) {
    SCL_CALL(cmd_transform(argc - 2, argv + 2, a));
  } else if (strcmp(cmd, "writepng") == 0 && argc == 4) {
    SCL_CALL(raw_read(argv[2], a));
    SCL_CALL(io_image_write_png(argv[3], a));
  } else if (strcmp(cmd, "list") == 0 && argc == 5) {
    SCL_CALL(cmd_list(argv + 2));
  } else {
    return SCL_ERROR(SCL_ERR_ARG, "usage: see the comment atop tests/data/data_tool.c");
  }
  return SCL_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: data_tool decode|resize|transform|writepng|list ...\n");
    return 1;
  }
  data_image a = {0}, b = {0};
  scl_err err = run(argc, argv, &a, &b);
  io_image_free(&a);
  io_image_free(&b);
  if (err) {
    fprintf(stderr, "error: %s\n%s", scl_error_message(), scl_error_traceback());
    return 1;
  }
  return 0;
}
