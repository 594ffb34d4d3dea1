/* dataset_impl.h: the data_dataset object shared by dataset.c and the format readers
 * (folder.c, cifar.c, synthetic.c). Private to src/data. */
#ifndef SAFECL_DATASET_IMPL_H
#define SAFECL_DATASET_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "safecl/data.h"

/* Append-only string storage: one buffer, offsets per string, built at open time. */
typedef struct strpool {
  char *buf;
  size_t len, cap;
  size_t *off;
  int64_t n, n_cap;
} strpool;

SCL_NODISCARD scl_err strpool_add(strpool *p, const char *s, size_t len);
SCL_NODISCARD scl_err strpool_addf(strpool *p, const char *fmt, ...) SCL_PRINTF(2, 3);
const char *strpool_get(const strpool *p, int64_t i);
void strpool_free(strpool *p);

typedef enum { DS_FOLDER, DS_CIFAR, DS_SYNTHETIC, DS_LIST, DS_PACKED, DS_LIST_PACKED } ds_kind;

struct data_dataset {
  ds_kind kind;
  int64_t count, n_classes; /* count: samples seen through the interface (after a limit) */
  /* with data_source.limit: count entries (scl_alloc), the reader's index of each kept sample
     (the arrays below and the readers use reader indices); NULL: index i is sample i */
  int64_t *keep;
  int32_t *labels; /* one per sample of the reader */
  strpool paths;   /* one per sample of the reader: the stable sample names */
  strpool classes; /* n_classes entries */
  scl_hash manifest;
  char *root; /* folder: ROOT (sample paths are relative to it); cifar: the .bin path */
  /* cifar: the mmapped .bin file; packed: the mmapped .h5 file */
  const uint8_t *map;
  size_t map_len;
  /* synthetic */
  int64_t per_class;
  int image_size, split_id; /* split_id: 0 train, 1 test */
  uint64_t seed;
  float difficulty;
  /* list (DomainNet): domain index of every sample, in the order of data_source.domains */
  int32_t *domain_of;
  int n_domains;
  /* packed: offsets into the blob (count + 1), the blob inside map; list pack: 2 x count, the
     start and end of each sample's bytes in the blob (packed_lists.c) */
  int64_t *pack_offsets;
  const uint8_t *pack_blob;
  /* decoded images: data_source.max_image_pixels, handed to every data_image read */
  int64_t max_image_pixels;
};

/* Manifest records: "safecl-manifest-v1", format, split, then per sample (path, label, size),
 * integers little-endian, so the hash is the same on every host. */
void ds_manifest_begin(scl_hasher *h, const char *format, const char *split);
void ds_manifest_record(scl_hasher *h, const char *path, int64_t label, uint64_t size);
void ds_manifest_u64(scl_hasher *h, uint64_t v);

/* Grows ds->labels to at least n entries. */
SCL_NODISCARD scl_err ds_labels_reserve(data_dataset *ds, int64_t n, int64_t *cap);

/* A DomainNet pack while the list reader opens it (packed_lists.c): sorted image paths with
 * their byte ranges (n_paths + 1 offsets into ds->pack_blob), and the stored list files
 * (names "<domain>_<split>", n_lists + 1 offsets into list_blob, inside ds->map). */
typedef struct ds_list_pack {
  char **paths, **lists;
  int64_t n_paths, n_lists;
  int64_t *offsets, *list_offsets;
  const uint8_t *list_blob;
} ds_list_pack;
/* Reads the pack's tables and maps the file into ds (map, map_len, pack_blob). Free the tables
 * with ds_list_pack_free; the mapping goes with ds (ds_packed_close). */
SCL_NODISCARD scl_err ds_list_pack_open(data_dataset *ds, const char *path, ds_list_pack *pk);
void ds_list_pack_free(ds_list_pack *pk);
/* Index of `path` in pk->paths, or -1. */
int64_t ds_list_pack_find(const ds_list_pack *pk, const char *path);
SCL_NODISCARD scl_err ds_list_pack_read(const data_dataset *ds, int64_t i, data_image *img);

/* Format readers: fill ds (kind already set, zeroed otherwise) or fail naming the path. */
SCL_NODISCARD scl_err ds_folder_open(data_dataset *ds, const data_source *src);
SCL_NODISCARD scl_err ds_folder_read(const data_dataset *ds, int64_t i, data_image *img);
SCL_NODISCARD scl_err ds_cifar_open(data_dataset *ds, const data_source *src);
SCL_NODISCARD scl_err ds_cifar_read(const data_dataset *ds, int64_t i, data_image *img);
void ds_cifar_close(data_dataset *ds);
SCL_NODISCARD scl_err ds_synthetic_open(data_dataset *ds, const data_source *src);
SCL_NODISCARD scl_err ds_packed_open(data_dataset *ds, const data_source *src);
SCL_NODISCARD scl_err ds_packed_read(const data_dataset *ds, int64_t i, data_image *img);
void ds_packed_close(data_dataset *ds);
SCL_NODISCARD scl_err ds_list_open(data_dataset *ds, const data_source *src);
SCL_NODISCARD scl_err ds_synthetic_read(const data_dataset *ds, int64_t i, data_image *img);

#endif /* SAFECL_DATASET_IMPL_H */
