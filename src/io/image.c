/* image.c: JPEG and PNG decoding to 8-bit RGB with PIL's conversions, and a PNG writer.
 *
 * A file is read whole into the image's grow-only `file` buffer and decoded from memory, so one
 * code path serves files and bytes packed elsewhere (HDF5). Both libraries report errors by
 * longjmp: each decoder keeps the setjmp in a small wrapper that owns the library object and
 * nothing else, and does the work in a separate function, so the only state read after a jump
 * is the error struct the handler wrote through a pointer (no register-cached local to lose).
 * Conversions that libpng/libjpeg cannot do the PIL way (CMYK, 16-bit gray) run in place in the
 * output buffer, which io_image_reserve over-allocates by 4 w bytes for that purpose.
 * Not handled: EXIF orientation (PIL's open ignores it too), colour management, GIF/BMP/WebP. */
#include "safecl/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* jpeglib.h needs FILE and size_t declared first. */
#include <jerror.h>
#include <jpeglib.h>

/* ---------------------------------------------------------------------------------------- */
/* Buffers                                                                                   */

static scl_err grow(uint8_t **buf, size_t *cap, size_t need, const char *what) {
  if (need <= *cap) return SCL_OK;
  size_t want = need + need / 4; /* amortise a stream of slightly growing images */
  void *p = NULL;
  SCL_CALL(scl_alloc(want, what, &p));
  scl_free(*buf);
  *buf = p;
  *cap = want;
  return SCL_OK;
}

static scl_err check_size(long long w, long long h, const char *name) {
  SCL_CHECK(w > 0 && h > 0 && w <= IO_IMAGE_MAX_SIDE && h <= IO_IMAGE_MAX_SIDE &&
                w * h <= IO_IMAGE_MAX_PIXELS,
            SCL_ERR_FORMAT, "%s: image size %lldx%lld out of range (max %d a side, %lld pixels)",
            name, w, h, IO_IMAGE_MAX_SIDE, IO_IMAGE_MAX_PIXELS);
  return SCL_OK;
}

/* The decode limit on w x h (data_image.max_pixels, IO_IMAGE_DEFAULT_MAX_PIXELS when unset),
 * checked from the header before io_image_reserve allocates. The message names the key that
 * raises it: the data layer sets max_pixels from dataset.max_image_pixels. */
static scl_err check_pixels(long long w, long long h, const data_image *img, const char *name) {
  SCL_CALL(check_size(w, h, name));
  long long limit = img->max_pixels > 0 ? img->max_pixels : IO_IMAGE_DEFAULT_MAX_PIXELS;
  SCL_CHECK(w * h <= limit, SCL_ERR_FORMAT,
            "%s: image of %lldx%lld = %lld pixels is larger than dataset.max_image_pixels = %lld "
            "(a decompression-bomb guard, PIL's MAX_IMAGE_PIXELS by default); raise that key, up "
            "to %lld, to read it",
            name, w, h, w * h, limit, IO_IMAGE_MAX_PIXELS);
  return SCL_OK;
}

scl_err io_image_reserve(data_image *img, int w, int h) {
  SCL_CALL(check_size(w, h, "image"));
  /* + 4 w: a CMYK row decoded in place spills w bytes past its RGB row. */
  size_t need = (size_t)w * (size_t)h * 3 + (size_t)w * 4;
  SCL_CALL(grow(&img->rgb, &img->cap, need, "decoded image"));
  img->w = w;
  img->h = h;
  return SCL_OK;
}

void io_image_free(data_image *img) {
  if (!img) return;
  scl_free(img->rgb);
  scl_free(img->file);
  memset(img, 0, sizeof *img);
}

io_image_format io_image_sniff(const void *buf, size_t len) {
  static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  const uint8_t *b = buf;
  if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return IO_IMAGE_JPEG;
  if (len >= 8 && memcmp(b, png_magic, 8) == 0) return IO_IMAGE_PNG;
  return IO_IMAGE_UNKNOWN;
}

/* A name for formats we recognise but do not decode, so the message says what the file is. */
static const char *other_format(const uint8_t *b, size_t len) {
  if (len >= 4 && memcmp(b, "GIF8", 4) == 0) return "GIF";
  if (len >= 2 && memcmp(b, "BM", 2) == 0) return "BMP";
  if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0) return "WebP";
  if (len >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0)) return "TIFF";
  if (len >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7') return "PNM";
  return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* JPEG                                                                                      */

typedef struct jpeg_fail {
  struct jpeg_error_mgr mgr; /* first: libjpeg hands us a pointer to it */
  jmp_buf jump;
  char msg[JMSG_LENGTH_MAX];
} jpeg_fail;

static void jpeg_on_error(j_common_ptr cinfo) {
  jpeg_fail *f = (jpeg_fail *)cinfo->err;
  cinfo->err->format_message(cinfo, f->msg);
  longjmp(f->jump, 1);
}

/* Warnings: only premature end of data is fatal (PIL refuses truncated files); the rest, such
 * as extraneous bytes before a marker, are silently tolerated as PIL tolerates them. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(cinfo);
}

/* PIL decodes CMYK JPEGs as Adobe-inverted ("CMYK;I") and converts with cmyk2rgb: with
 * c' = 255 - c etc., R = clip(k - muldiv255(c', k)) where k is the raw (non-inverted) K. */
static void cmyk_row_to_rgb(uint8_t *row, int w) {
  for (int x = 0; x < w; x++) {
    const uint8_t *in = row + 4 * (size_t)x;
    int nk = in[3], v[3];
    for (int c = 0; c < 3; c++) {
      int t = (255 - in[c]) * nk + 128;
      v[c] = nk - (((t >> 8) + t) >> 8);
    }
    uint8_t *out = row + 3 * (size_t)x; /* out <= in: forward order never clobbers unread input */
    for (int c = 0; c < 3; c++) out[c] = (uint8_t)(v[c] < 0 ? 0 : v[c] > 255 ? 255 : v[c]);
  }
}

static scl_err jpeg_decode_body(struct jpeg_decompress_struct *cinfo, const char *name,
                                data_image *img) {
  jpeg_read_header(cinfo, TRUE);
  int cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  if (cinfo->num_components != 1 && cinfo->num_components != 3 && !cmyk)
    return SCL_ERROR(SCL_ERR_FORMAT, "%s: JPEG with %d components is not supported", name,
                     cinfo->num_components);
  cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  SCL_CALL(check_pixels(cinfo->image_width, cinfo->image_height, img, name));
  SCL_CALL(io_image_reserve(img, (int)cinfo->image_width, (int)cinfo->image_height));
  jpeg_start_decompress(cinfo);
  size_t stride = (size_t)img->w * 3;
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = img->rgb + (size_t)cinfo->output_scanline * stride;
    SCL_CHECK(jpeg_read_scanlines(cinfo, &row, 1) == 1, SCL_ERR_FORMAT,
              "%s: JPEG decoder stalled at row %u", name, (unsigned)cinfo->output_scanline);
    if (cmyk) cmyk_row_to_rgb(row, img->w);
  }
  jpeg_finish_decompress(cinfo);
  return SCL_OK;
}

static scl_err jpeg_decode(const uint8_t *buf, size_t len, const char *name, data_image *img) {
  struct jpeg_decompress_struct cinfo;
  jpeg_fail fail;
  cinfo.err = jpeg_std_error(&fail.mgr);
  fail.mgr.error_exit = jpeg_on_error;
  fail.mgr.emit_message = jpeg_on_message;
  fail.msg[0] = '\0';
  if (setjmp(fail.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return SCL_ERROR(SCL_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", name, fail.msg);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, buf, (unsigned long)len);
  scl_err err = jpeg_decode_body(&cinfo, name, img);
  jpeg_destroy_decompress(&cinfo);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* PNG                                                                                       */

typedef struct png_fail {
  char msg[256];
  const uint8_t *buf; /* memory source */
  size_t len, pos;
} png_fail;

static void png_on_error(png_structp png, png_const_charp msg) {
  png_fail *f = png_get_error_ptr(png);
  snprintf(f->msg, sizeof f->msg, "%s", msg);
  png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg; /* PIL does not check what libpng warns about (iCCP profiles, ancillary CRCs) */
}

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  png_fail *f = png_get_error_ptr(png);
  if (n > f->len - f->pos) png_error(png, "file ends before the image data does (truncated)");
  memcpy(out, f->buf + f->pos, n);
  f->pos += n;
}

/* Sets up libpng's transforms; returns 1 when rows stay 16-bit gray for gray16_to_rgb. */
static int png_setup_transforms(png_structp png, png_infop info) {
  int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (type == PNG_COLOR_TYPE_GRAY && depth == 16) return 1;
  if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png); /* high byte, as PIL's ";16B" unpackers */
  if (type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (!(type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
  return 0;
}

/* Big-endian 16-bit gray rows (2 w bytes at the start of each 3 w row) to clipped RGB; backward
 * so that each pixel is read before anything overwrites it. */
static void gray16_to_rgb(data_image *img) {
  size_t stride = (size_t)img->w * 3;
  for (int y = 0; y < img->h; y++) {
    uint8_t *row = img->rgb + (size_t)y * stride;
    for (int x = img->w - 1; x >= 0; x--) {
      unsigned v = ((unsigned)row[2 * x] << 8) | row[2 * x + 1];
      uint8_t g = (uint8_t)(v > 255 ? 255 : v);
      row[3 * x] = row[3 * x + 1] = row[3 * x + 2] = g;
    }
  }
}

static scl_err png_decode_body(png_structp png, png_infop info, const char *name, data_image *img) {
  png_set_benign_errors(png, 1);
  /* Alpha is dropped anyway; ignoring tRNS keeps libpng from expanding it into an alpha
   * channel for palette images, which png_set_strip_alpha does not undo. */
  static const png_byte trns[] = "tRNS";
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, trns, 1);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  SCL_CALL(check_pixels(w, h, img, name));
  int gray16 = png_setup_transforms(png, info);
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  SCL_CHECK(rowbytes == (size_t)w * (gray16 ? 2 : 3), SCL_ERR_FORMAT,
            "%s: unsupported PNG layout (type %d, depth %d)", name, png_get_color_type(png, info),
            png_get_bit_depth(png, info));
  SCL_CALL(io_image_reserve(img, (int)w, (int)h));
  /* Interlaced passes combine into the same row memory, which stays untouched between passes. */
  for (int p = 0; p < passes; p++)
    for (png_uint_32 y = 0; y < h; y++) png_read_row(png, img->rgb + (size_t)y * w * 3, NULL);
  if (gray16) gray16_to_rgb(img);
  return SCL_OK;
}

static scl_err png_decode(const uint8_t *buf, size_t len, const char *name, data_image *img) {
  png_fail fail = {.buf = buf, .len = len};
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &fail, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    return SCL_ERROR(SCL_ERR_NOMEM, "%s: cannot create a PNG reader", name);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    return SCL_ERROR(SCL_ERR_FORMAT, "%s: corrupt or truncated PNG: %s", name, fail.msg);
  }
  png_set_read_fn(png, &fail, png_read_mem);
  scl_err err = png_decode_body(png, info, name, img);
  png_destroy_read_struct(&png, &info, NULL);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points                                                                              */

scl_err io_image_decode(const void *buf, size_t len, const char *name, data_image *img) {
  switch (io_image_sniff(buf, len)) {
    case IO_IMAGE_JPEG:
      SCL_CALL(jpeg_decode(buf, len, name, img));
      return SCL_OK;
    case IO_IMAGE_PNG:
      SCL_CALL(png_decode(buf, len, name, img));
      return SCL_OK;
    default:
      break;
  }
  const char *other = other_format(buf, len);
  SCL_CHECK(!other, SCL_ERR_FORMAT, "%s: %s images are not supported (only JPEG and PNG)", name,
            other);
  SCL_CHECK(len != 0, SCL_ERR_FORMAT, "%s: empty file, not an image", name);
  return SCL_ERROR(SCL_ERR_FORMAT, "%s: not a JPEG or PNG file (unrecognised first bytes)", name);
}

scl_err io_image_read(const char *path, data_image *img) {
  FILE *f = NULL;
  SCL_CALL(scl_fopen_regular(path, "image", &f));
  scl_err err = SCL_OK;
  struct stat st;
  SCL_CHECK_GOTO(err, done, fstat(fileno(f), &st) == 0, SCL_ERR_IO, "%s: cannot stat: %s", path,
                 strerror(errno));
  size_t len = (size_t)st.st_size;
  SCL_CALL_GOTO(err, grow(&img->file, &img->file_cap, len ? len : 1, "encoded image"), done);
  SCL_CHECK_GOTO(err, done, fread(img->file, 1, len, f) == len, SCL_ERR_IO,
                 "%s: short read (%zu bytes expected)", path, len);
  SCL_CALL_GOTO(err, io_image_decode(img->file, len, path, img), done);
done:
  fclose(f);
  return err;
}

static scl_err png_write_body(png_structp png, png_infop info, FILE *f, const data_image *img) {
  png_init_io(png, f);
  png_set_compression_level(png, 1);
  png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < img->h; y++) png_write_row(png, img->rgb + (size_t)y * img->w * 3);
  png_write_end(png, NULL);
  return SCL_OK;
}

scl_err io_image_write_png(const char *path, const data_image *img) {
  SCL_CHECK(img && img->rgb && img->w > 0 && img->h > 0, SCL_ERR_ARG, "%s: no image to write",
            path);
  FILE *f = fopen(path, "wb");
  SCL_CHECK(f, SCL_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  png_fail fail = {.len = 0};
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &fail, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    fclose(f);
    return SCL_ERROR(SCL_ERR_NOMEM, "%s: cannot create a PNG writer", path);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return SCL_ERROR(SCL_ERR_IO, "%s: PNG write failed: %s", path, fail.msg);
  }
  scl_err err = png_write_body(png, info, f, img);
  png_destroy_write_struct(&png, &info);
  if (fclose(f) != 0 && !err)
    return SCL_ERROR(SCL_ERR_IO, "%s: write failed: %s", path, strerror(errno));
  return err;
}
