/* raw_image.h: the raw image files the data test tools read (one copy for data_tool and
 * augment_tool): a header of two uint32 (width, height), then width x height x 3 RGB bytes, row
 * major, as the Python tests write them. */
#ifndef SAFECL_TESTS_DATA_RAW_IMAGE_H
#define SAFECL_TESTS_DATA_RAW_IMAGE_H

#include <stdint.h>
#include <stdio.h>

#include "safecl/image.h"

static inline scl_err raw_read(const char *path, data_image *img) {
  FILE *f = fopen(path, "rb");
  if (!f) return SCL_ERROR(SCL_ERR_IO, "%s: cannot open", path);
  uint32_t wh[2];
  scl_err err = SCL_OK;
  if (fread(wh, sizeof wh, 1, f) != 1)
    SCL_ERROR_GOTO(err, done, SCL_ERR_FORMAT, "%s: no header", path);
  SCL_CALL_GOTO(err, io_image_reserve(img, (int)wh[0], (int)wh[1]), done);
  if (fread(img->rgb, (size_t)img->w * img->h * 3, 1, f) != 1)
    SCL_ERROR_GOTO(err, done, SCL_ERR_FORMAT, "%s: short pixel data", path);
done:
  fclose(f);
  return err;
}

#endif /* SAFECL_TESTS_DATA_RAW_IMAGE_H */
