/* data.h: datasets (class folders, CIFAR-100 binary, synthetic) and image transforms.
 *
 * Transforms reproduce the reference pipeline's pixels (PIL 9.4 + torchvision 0.14, docs/methods.md
 * a.3): Resize(S, bicubic) = PIL's separable Image.resize at torchvision's size, CenterCrop with
 * torchvision's rounding and zero padding, ToTensor = uint8 / 255 in float32. They never
 * allocate: the caller passes scratch memory sized by the matching *_scratch_bytes function.
 * Images are 8-bit RGB, HWC (data_image, image.h); tensors are float32 CHW.
 *
 * A dataset is an ordered list of samples with integer labels in [0, num_classes). Sample i of
 * a dataset is always the same image: order is fixed by sorting (folders) or by the file
 * (CIFAR), never by directory-listing order. A data_dataset is read-only after open, and
 * data_dataset_read may be called from several threads at once with different data_image
 * objects. */
#ifndef SAFECL_DATA_H
#define SAFECL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "safecl/core.h"
#include "safecl/image.h"

/* ---------------------------------------------------------------------------------------- */
/* Transforms (transform.c)                                                                  */

typedef enum { DATA_FILTER_BILINEAR = 0, DATA_FILTER_BICUBIC = 1 } data_filter;

/* A rectangle of pixels: columns [x, x + w), rows [y, y + h). */
typedef struct data_rect {
  int x, y, w, h;
} data_rect;

/* torchvision 0.14 Resize(short_side) output size: the shorter side becomes short_side, the
 * longer int(short_side * long / short) (truncated, computed in double as Python does). */
void data_resize_size(int w, int h, int short_side, int *out_w, int *out_h);

/* torchvision CenterCrop(ch, cw) of a w x h image: *src is the part of the image that is kept,
 * *dst where it lands in the ch x cw output. When the crop is larger than the image along an
 * axis, torchvision zero-pads (pad before = (crop - size) / 2) and the rest of dst is zeros. */
void data_center_crop_rect(int w, int h, int cw, int ch, data_rect *src, data_rect *dst);

/* Scratch bytes data_resize needs for these arguments. */
size_t data_resize_scratch_bytes(int sw, int sh, int dw, int dh, data_rect win, data_filter filter);

/* Resizes the sw x sh RGB image `src` (row stride src_stride bytes) to dw x dh exactly as PIL
 * 9.4's Image.resize((dw, dh), BICUBIC|BILINEAR), but computes only the output window `win`
 * (which lies inside dw x dh) into dst (win.w x win.h, row stride dst_stride bytes). Every
 * output pixel depends only on its own coefficients, so a window equals the crop of the full
 * resize, pixel for pixel. A source sub-rectangle is passed as a pointer plus the parent stride
 * (RandomResizedCrop = crop then resize). Errors: SCL_ERR_ARG for bad sizes or short scratch. */
SCL_NODISCARD scl_err data_resize(uint8_t *dst, size_t dst_stride, const uint8_t *src, int sw,
                                  int sh, size_t src_stride, int dw, int dh, data_rect win,
                                  data_filter filter, void *scratch, size_t scratch_bytes);

/* ToTensor (+ Normalize): out[c][y][x] = (src[y][x][c] / 255 - mean[c]) / std[c] in float32,
 * for a w x h window with row stride `stride` bytes, out of size 3 x h x w. mean and std may be
 * NULL (no normalisation; the SAFE default). */
void data_to_chw(float *out, const uint8_t *src, int w, int h, size_t stride, const float *mean,
                 const float *std);

/* Scratch bytes data_test_transform needs for a w x h input. */
size_t data_test_transform_scratch_bytes(int w, int h, int resize, int crop);

/* The evaluation transform Resize(resize, bicubic) + CenterCrop(crop) + ToTensor (+ Normalize
 * when mean/std are given) into out_chw (3 x crop x crop floats). resize <= 0 skips the resize;
 * an image whose torchvision output size equals its own size is not resampled (so CIFAR at
 * resize = crop = 32, or an image already resize pixels on its short side, is only cropped).
 * Only the cropped window of the resize is computed. Errors: SCL_ERR_ARG (bad sizes, short
 * scratch). */
SCL_NODISCARD scl_err data_test_transform(const data_image *img, int resize, int crop,
                                          const float *mean, const float *std, float *out_chw,
                                          void *scratch, size_t scratch_bytes);

/* ---------------------------------------------------------------------------------------- */
/* Datasets (dataset.c, folder.c, cifar.c, synthetic.c)                                      */

typedef struct data_source {
  const char *format; /* "folder", "cifar100", "domainnet" or "synthetic" */
  const char *root;   /* folder: ROOT with ROOT/{train,test}/<class>/<image>; cifar100: ROOT
                         with ROOT/cifar-100-binary/{train,test}.bin, or that directory itself;
                         synthetic: unused (may be NULL) */
  const char *split;  /* "train" or "test" */
  /* domainnet: comma-separated domains, read from ROOT/<domain>_<split>.txt ("path label" per
     line, path relative to ROOT), concatenated in this order */
  const char *domains;
  /* synthetic: number of classes (>= 1); domainnet: number of classes (0 = 1 + largest label) */
  int64_t n_classes;
  int64_t per_class; /* images per class in this split, >= 1 */
  int image_size;    /* side of the square images, 8 .. 4096 */
  uint64_t seed;
  double difficulty; /* synthetic: [0, 1): how far images blend toward another class */
  /* folder, packed, domainnet: largest width x height of an image a read decodes (the key
     dataset.max_image_pixels); 0: IO_IMAGE_DEFAULT_MAX_PIXELS */
  int64_t max_image_pixels;
  /* any format: keep at most `limit` samples of each class (of each class and domain for
     domainnet), the first ones in dataset order; 0 = all. Sample i then names the i-th kept
     sample, and the manifest hash covers the limit. */
  int64_t limit;
} data_source;

typedef struct data_dataset data_dataset;

/* Opens a dataset; *out is owned by the caller (data_dataset_close). Errors name the path at
 * fault: SCL_ERR_IO (missing or unreadable root, split or file), SCL_ERR_FORMAT (empty class
 * directory, CIFAR file of the wrong size), SCL_ERR_ARG (unknown format or split, bad synthetic
 * parameters). Folder images themselves are not opened here: a corrupt image fails at read. */
SCL_NODISCARD scl_err data_dataset_open(const data_source *src, data_dataset **out);
/* Accepts NULL and *ds == NULL; sets *ds to NULL. */
void data_dataset_close(data_dataset **ds);

int64_t data_dataset_count(const data_dataset *ds);
int64_t data_dataset_num_classes(const data_dataset *ds);
/* Label of sample i in [0, num_classes): the sorted class-directory index (folders), CIFAR's
 * fine label, the generating class (synthetic). i must be in [0, count). */
int64_t data_dataset_label(const data_dataset *ds, int64_t i);
/* A stable name of sample i, valid until close: "train/<class>/<file>" relative to the folder
 * root (subdirectories of a class included), "cifar100/test/000123", or
 * "synthetic/train/c0003/000017". */
const char *data_dataset_path(const data_dataset *ds, int64_t i);
/* Class directory name (folders), fine_label_names.txt entry or "class_NNN" (CIFAR), "cNNNN"
 * (synthetic); valid until close. */
const char *data_dataset_class_name(const data_dataset *ds, int64_t c);
/* Decodes sample i into img (grown as needed). Errors name the sample's file. */
SCL_NODISCARD scl_err data_dataset_read(const data_dataset *ds, int64_t i, data_image *img);
/* Packs the class-folder dataset at root (both splits) into one HDF5 file at out, published
 * atomically; a "folder" data_source whose root is that file reads it in place of the folder,
 * with the same samples, order, labels and manifest. */
SCL_NODISCARD scl_err data_pack(const char *root, const char *out);
/* Whether root is a list-file dataset (DomainNet): it holds <domain>_train.txt and no train/
 * folder. */
int data_list_root(const char *root);
/* Packs every list file ROOT/<domain>_<split>.txt and every image they name into one HDF5 file
 * at out, published atomically; a "domainnet" data_source whose root is that file reads it in
 * place of the folder, with the same samples, order, labels, domains and manifest for any
 * data_source.domains. A malformed list or a missing image fails naming list file and line. */
SCL_NODISCARD scl_err data_pack_lists(const char *root, const char *out);
/* Index (into data_source.domains) of sample i's domain; 0 for datasets without domains. */
int data_dataset_domain(const data_dataset *ds, int64_t i);
/* XXH3-128 identity of the dataset, computed at open: format, split and the ordered list of
 * (path, label, byte size) of every sample. For folders the size is the file size, not a hash of
 * the pixels: hashing 100k images at every open costs minutes, and a replaced file of identical
 * size is the accepted blind spot. CIFAR also hashes the bytes of its .bin file (one sequential
 * read); synthetic hashes its generator parameters. With data_source.limit > 0 it is the hash of
 * that full-list hash and the limit. */
scl_hash data_dataset_manifest_hash(const data_dataset *ds);

#endif /* SAFECL_DATA_H */
