/* image.h: decoding JPEG and PNG files into 8-bit RGB, and writing PNG.
 *
 * The reference pipelines load every image with PIL and `convert("RGB")`, so the decoder's
 * contract is PIL's pixels, not libpng's or libjpeg's defaults:
 *   - JPEG (libjpeg-turbo, default settings: islow DCT, fancy upsampling, exactly as PIL
 *     decodes): YCbCr/RGB -> RGB; grayscale -> gray replicated; CMYK/YCCK -> RGB with PIL's
 *     Adobe-inverted CMYK conversion (R = k - (255 - c) * k / 255 rounded as PIL's MULDIV255).
 *     12-bit JPEG is refused (PIL refuses it too). A truncated JPEG is an error (PIL raises
 *     "image file is truncated"); libjpeg's other warnings (extraneous bytes) are ignored, as PIL
 *     ignores them.
 *   - PNG (libpng): palette -> RGB, gray (1/2/4/8 bit) -> replicated, alpha dropped (not
 *     composited), 16-bit RGB/RGBA/gray+alpha -> the high byte of each sample; 16-bit gray
 *     without alpha -> min(v, 255), which is PIL's "I" -> "RGB" clip, not a rescale. gAMA, iCCP
 *     and sRGB are ignored, as PIL ignores them.
 * The format is detected from the magic bytes, never from the file name.
 *
 * A data_image owns two grow-only buffers (decoded pixels and the file's encoded bytes), so a
 * loop that reads one image after another allocates only when an image is bigger than any
 * before it. Zero-initialise it (`data_image img = {0};`) and release it with
 * io_image_free. Functions on different data_image objects may run concurrently. */
#ifndef SAFECL_IMAGE_H
#define SAFECL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "safecl/core.h"

typedef struct data_image {
  int w, h;      /* pixels */
  uint8_t *rgb;  /* h * w * 3 bytes, HWC (row-major, R G B interleaved); owned by the image */
  size_t cap;    /* bytes allocated at rgb (grow only) */
  uint8_t *file; /* private to io_image_read: the encoded bytes of the last file read */
  size_t file_cap;
  /* Largest width x height a decode accepts; 0: IO_IMAGE_DEFAULT_MAX_PIXELS. Set by the dataset
   * from dataset.max_image_pixels; at most IO_IMAGE_MAX_PIXELS. */
  int64_t max_pixels;
} data_image;

typedef enum { IO_IMAGE_UNKNOWN = 0, IO_IMAGE_JPEG, IO_IMAGE_PNG } io_image_format;

/* Largest image anything accepts: PIL's decompression-bomb error limit (2 * 89478485 pixels, where
 * PIL raises DecompressionBombError) and 65535 a side. */
#define IO_IMAGE_MAX_PIXELS 178956970LL
#define IO_IMAGE_MAX_SIDE 65535
/* Largest image a decode accepts unless data_image.max_pixels says otherwise: PIL's
 * Image.MAX_IMAGE_PIXELS (89478485), above which PIL warns of a decompression bomb. The header of
 * a small file can declare a huge image (a 170 KB PNG of 13000x13000 decodes to 507 MB), so the
 * size is checked before any pixel buffer is allocated; dataset.max_image_pixels raises it. */
#define IO_IMAGE_DEFAULT_MAX_PIXELS 89478485LL

/* Sets img->w, img->h and grows img->rgb to hold them (plus a small slack the decoders use for
 * in-place conversions). Pixel contents are unspecified afterwards. */
SCL_NODISCARD scl_err io_image_reserve(data_image *img, int w, int h);
/* Releases both buffers and zeroes the struct; accepts NULL. */
void io_image_free(data_image *img);

/* The format named by the first bytes of a file (8 bytes suffice). */
io_image_format io_image_sniff(const void *buf, size_t len);

/* Decodes an encoded JPEG or PNG held in memory; `name` (a path) appears in error messages.
 * Errors: SCL_ERR_FORMAT for corrupt, truncated or unsupported data, or an image larger than
 * img->max_pixels (checked from the header, before the pixels are allocated), naming `name`. */
SCL_NODISCARD scl_err io_image_decode(const void *buf, size_t len, const char *name,
                                      data_image *img);

/* Reads and decodes a file. SCL_ERR_IO if it cannot be read, SCL_ERR_ARG if it is not a regular
 * file (a FIFO, a device: refused without blocking), SCL_ERR_FORMAT as above. */
SCL_NODISCARD scl_err io_image_read(const char *path, data_image *img);

/* Writes img as an 8-bit RGB PNG (fast zlib level; for tests and dumps, not publication:
 * the write is not atomic). */
SCL_NODISCARD scl_err io_image_write_png(const char *path, const data_image *img);

#endif /* SAFECL_IMAGE_H */
