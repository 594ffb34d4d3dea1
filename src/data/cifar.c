/* cifar.c: CIFAR-100 from the official binary release (cifar-100-binary/{train,test}.bin).
 *
 * Each record is <coarse label 1 B><fine label 1 B><3072 B: 32x32 R plane, G plane, B plane>;
 * the label is the fine one, sample i is record i. The file is mapped read-only rather than
 * read: ranks on one node then share one copy in the page cache, and open costs one sequential
 * pass (label scan plus the content hash that goes into the manifest; the whole file is 154 MB
 * for train, so hashing it is cheap where hashing 100k JPEGs would not be). The torchvision
 * "python" pickles are not read here (docs/methods.md a.4 says the two hold the same images):
 * a root holding them (ROOT/cifar-100-python/{train,test,meta}, or those files in ROOT) is
 * recognised by the pickle's first byte and refused with the command line of the shipped
 * converter, analysis/cifar_python_to_binary.py.
 * A file of any other size than the release's (50000 train, 10000 test records) is refused, so a
 * copy cut short at a record boundary is not taken for a smaller dataset. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset_impl.h"

#define CIFAR_SIDE 32
#define CIFAR_PLANE (CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (2 + 3 * CIFAR_PLANE)
#define CIFAR_FINE 100
#define CIFAR_COARSE 20
#define CIFAR_TRAIN_RECORDS 50000
#define CIFAR_TEST_RECORDS 10000

static scl_err join(char *out, const char *a, const char *b, const char *c) {
  int n = snprintf(out, PATH_MAX, "%s%s%s", a, b, c);
  SCL_CHECK(n >= 0 && n < PATH_MAX, SCL_ERR_IO, "%s%s%s: path too long", a, b, c);
  return SCL_OK;
}

/* Whether dir holds CIFAR-100's python version: meta and <split> files, the latter a pickle
 * (protocol 2 or later starts with the byte 0x80). */
static int python_version(const char *dir, const char *split) {
  char path[PATH_MAX];
  struct stat st;
  int n = snprintf(path, sizeof path, "%s/meta", dir);
  if (n < 0 || n >= (int)sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  n = snprintf(path, sizeof path, "%s/%s", dir, split);
  FILE *f = n > 0 && n < (int)sizeof path ? fopen(path, "rb") : NULL;
  if (!f) return 0;
  int c = fgetc(f);
  fclose(f);
  return c == 0x80;
}

/* The error for a root that holds the python version instead of the binary one. */
static scl_err refuse_python(const char *root, const char *split) {
  char dir[PATH_MAX];
  SCL_CALL(join(dir, root, "/cifar-100-python", ""));
  if (!python_version(dir, split)) {
    if (!python_version(root, split)) return SCL_OK;
    snprintf(dir, sizeof dir, "%s", root);
  }
  return SCL_ERROR(
      SCL_ERR_FORMAT,
      "dataset.root = %s: %s holds CIFAR-100's python version (the pickles "
      "torchvision downloads); safecl reads the binary version. Convert it once "
      "with the shipped converter (analysis/ of the checkout, or share/safecl/analysis "
      "of an install): python3 analysis/cifar_python_to_binary.py %s %s-binary "
      "and set dataset.root = %s-binary",
      root, dir, dir, root, root);
}

/* ROOT/cifar-100-binary/<split>.bin, or ROOT/<split>.bin when ROOT is that directory. */
static scl_err find_bin(const char *root, const char *split, char *path, char *dir) {
  struct stat st;
  char name[64];
  snprintf(name, sizeof name, "/%s.bin", split); /* split is "train" or "test" */
  SCL_CALL(join(dir, root, "/cifar-100-binary", ""));
  SCL_CALL(join(path, dir, name, ""));
  if (stat(path, &st) == 0) return SCL_OK;
  SCL_CALL(join(dir, root, "", ""));
  SCL_CALL(join(path, root, name, ""));
  if (stat(path, &st) == 0) return SCL_OK;
  SCL_CALL(refuse_python(root, split));
  SCL_CHECK(stat(root, &st) == 0, SCL_ERR_IO, "%s: CIFAR-100 root not found: %s", root,
            strerror(errno));
  return SCL_ERROR(SCL_ERR_IO, "%s: no %s.bin in it or in %s/cifar-100-binary", root, split, root);
}

static scl_err map_file(data_dataset *ds, const char *path, const char *split) {
  long long records = strcmp(split, "test") ? CIFAR_TRAIN_RECORDS : CIFAR_TEST_RECORDS;
  size_t want = (size_t)records * CIFAR_RECORD;
  int fd = -1;
  SCL_CALL(scl_open_regular(path, "CIFAR-100 file", &fd));
  struct stat st;
  scl_err err = SCL_OK;
  SCL_CHECK_GOTO(err, done, fstat(fd, &st) == 0, SCL_ERR_IO, "%s: cannot stat: %s", path,
                 strerror(errno));
  size_t len = (size_t)st.st_size;
  SCL_CHECK_GOTO(err, done, len == want, SCL_ERR_FORMAT,
                 "%s: %zu bytes, expected %zu (%lld records of %d bytes, CIFAR-100's %s split): "
                 "truncated, or not CIFAR-100's %s.bin (CIFAR-10's records are 3073 bytes)?",
                 path, len, want, records, CIFAR_RECORD, split, split);
  void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  SCL_CHECK_GOTO(err, done, map != MAP_FAILED, SCL_ERR_IO, "%s: cannot map: %s", path,
                 strerror(errno));
  ds->map = map;
  ds->map_len = len;
done:
  close(fd);
  return err;
}

/* fine_label_names.txt beside the .bin (one name a line, 100 lines); class_NNN otherwise. */
static scl_err load_class_names(data_dataset *ds, const char *dir) {
  char path[PATH_MAX], line[256];
  SCL_CALL(join(path, dir, "/fine_label_names.txt", ""));
  struct stat st;
  FILE *f = NULL;
  if (stat(path, &st) == 0) SCL_CALL(scl_fopen_regular(path, "CIFAR-100 class names", &f));
  if (f) {
    while (ds->classes.n < CIFAR_FINE && fgets(line, sizeof line, f)) {
      size_t n = strcspn(line, "\r\n");
      if (n == 0) continue;
      scl_err err = strpool_add(&ds->classes, line, n);
      if (err) {
        fclose(f);
        return SCL_TRACE(err);
      }
    }
    fclose(f);
    if (ds->classes.n == CIFAR_FINE) return SCL_OK;
    SCL_WARN("%s: %lld names, expected %d; using class_NNN", path, (long long)ds->classes.n,
             CIFAR_FINE);
    strpool_free(&ds->classes);
  }
  for (int c = 0; c < CIFAR_FINE; c++) SCL_CALL(strpool_addf(&ds->classes, "class_%03d", c));
  return SCL_OK;
}

scl_err ds_cifar_open(data_dataset *ds, const data_source *src) {
  if (!src->root || !*src->root) return SCL_ERROR(SCL_ERR_ARG, "cifar100 dataset: no root given");
  char path[PATH_MAX], dir[PATH_MAX];
  SCL_CALL(find_bin(src->root, src->split, path, dir));
  if (!(ds->root = strdup(path))) return SCL_ERROR(SCL_ERR_NOMEM, "cannot copy a path");
  SCL_CALL(map_file(ds, path, src->split));
  ds->count = (int64_t)(ds->map_len / CIFAR_RECORD);
  ds->n_classes = CIFAR_FINE;
  int64_t cap = 0;
  SCL_CALL(ds_labels_reserve(ds, ds->count, &cap));
  for (int64_t i = 0; i < ds->count; i++) {
    const uint8_t *rec = ds->map + (size_t)i * CIFAR_RECORD;
    SCL_CHECK(rec[0] < CIFAR_COARSE && rec[1] < CIFAR_FINE, SCL_ERR_FORMAT,
              "%s: record %lld has labels (coarse %d, fine %d) out of range: not CIFAR-100?", path,
              (long long)i, rec[0], rec[1]);
    ds->labels[i] = rec[1];
    SCL_CALL(strpool_addf(&ds->paths, "cifar100/%s/%06lld", src->split, (long long)i));
  }
  SCL_CALL(load_class_names(ds, dir));
  scl_hasher *h = NULL;
  SCL_CALL(scl_hasher_create(&h));
  ds_manifest_begin(h, "cifar100", src->split);
  for (int64_t i = 0; i < ds->count; i++)
    ds_manifest_record(h, strpool_get(&ds->paths, i), ds->labels[i], CIFAR_RECORD);
  scl_hash content = scl_hash_bytes(ds->map, ds->map_len);
  ds_manifest_u64(h, content.hi);
  ds_manifest_u64(h, content.lo);
  ds->manifest = scl_hasher_digest(h);
  scl_hasher_destroy(&h);
  return SCL_OK;
}

scl_err ds_cifar_read(const data_dataset *ds, int64_t i, data_image *img) {
  SCL_CALL(io_image_reserve(img, CIFAR_SIDE, CIFAR_SIDE));
  const uint8_t *px = ds->map + (size_t)i * CIFAR_RECORD + 2;
  for (int p = 0; p < CIFAR_PLANE; p++) {
    img->rgb[3 * p] = px[p];
    img->rgb[3 * p + 1] = px[CIFAR_PLANE + p];
    img->rgb[3 * p + 2] = px[2 * CIFAR_PLANE + p];
  }
  return SCL_OK;
}

void ds_cifar_close(data_dataset *ds) {
  if (ds->map) munmap((void *)ds->map, ds->map_len);
  ds->map = NULL;
}
