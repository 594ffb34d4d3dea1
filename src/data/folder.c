/* folder.c: class-folder datasets, ROOT/{train,test}/<class>/<image>, in torchvision
 * ImageFolder's order.
 *
 * Classes are the subdirectories of the split directory in byte order (Python's sorted); a
 * class's images are found recursively and ordered as ImageFolder orders them: directories by
 * their path string (sorted(os.walk(...))), files by name within a directory. Files count as
 * images by ImageFolder's extension list, case-insensitively (.jpg .jpeg .png .ppm .bmp .pgm
 * .tif .tiff .webp), so the sample list matches torchvision's; the decoder then goes by content,
 * and a BMP/TIFF/WebP fails at read with a message saying so. Deliberate difference: hidden
 * entries (name starting with '.') are skipped, directories included, where ImageFolder would
 * take ".ipynb_checkpoints" as a class. Open does one stat per file (sizes go into the
 * manifest) and no image decoding.
 *
 * Symlinks are followed as os.walk(followlinks=True) follows them, but every directory is walked
 * once: each is known by (st_dev, st_ino), and one reached a second time is refused, naming it,
 * as a loop when it is an ancestor (a link to "." or ".."), else as a duplicate whose images would
 * be listed twice. Without that, three links to "." in a class directory make 3^16 directories
 * before any depth limit stops the walk. Nesting below a class is legal (ImageFolder recurses) up
 * to FOLDER_MAX_DEPTH levels. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "dataset_impl.h"

#define FOLDER_MAX_DEPTH 16

typedef struct file_rec {
  int64_t dir;     /* index into the walk's directory pool */
  size_t name_off; /* into the walk's name pool */
  uint64_t size;
  const char *dir_s, *name_s; /* set once the pools stop growing, for sorting */
} file_rec;

/* A directory of the walk, by identity: the same entry index as in walk.dirs. */
typedef struct dir_node {
  dev_t dev;
  ino_t ino;
  int64_t parent; /* index of the directory that listed it; -1 for the class directory */
} dir_node;

typedef struct walk {
  strpool dirs;  /* relative to the class directory; "" is the class directory itself */
  strpool names; /* file names */
  file_rec *files;
  int64_t n_files, cap_files, skipped;
  dir_node *nodes; /* dirs.n entries */
  int64_t cap_nodes;
  int64_t *table; /* open addressing over (dev, ino): node index + 1, 0 = empty */
  size_t table_cap;
  dev_t split_dev; /* the split directory, which a class must not reach either */
  ino_t split_ino;
} walk;

static int has_image_ext(const char *name) {
  static const char *const ext[] = {".jpg", ".jpeg", ".png",  ".ppm", ".bmp",
                                    ".pgm", ".tif",  ".tiff", ".webp"};
  size_t n = strlen(name);
  for (size_t k = 0; k < sizeof ext / sizeof ext[0]; k++) {
    size_t e = strlen(ext[k]);
    if (n > e && strcasecmp(name + n - e, ext[k]) == 0) return 1;
  }
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_file(const void *a, const void *b) {
  const file_rec *x = a, *y = b;
  int c = strcmp(x->dir_s, y->dir_s);
  return c ? c : strcmp(x->name_s, y->name_s);
}

static scl_err walk_add_file(walk *w, int64_t dir, const char *name, uint64_t size) {
  if (w->n_files == w->cap_files) {
    int64_t cap = w->cap_files ? 2 * w->cap_files : 256;
    file_rec *f = realloc(w->files, (size_t)cap * sizeof *f);
    SCL_CHECK(f, SCL_ERR_NOMEM, "cannot list %lld files", (long long)cap);
    w->files = f;
    w->cap_files = cap;
  }
  SCL_CALL(strpool_add(&w->names, name, strlen(name)));
  w->files[w->n_files++] = (file_rec){dir, w->names.off[w->names.n - 1], size, NULL, NULL};
  return SCL_OK;
}

static size_t node_hash(dev_t dev, ino_t ino, size_t cap) {
  uint64_t h = ((uint64_t)ino ^ ((uint64_t)dev << 32)) * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 17) & (cap - 1);
}

/* The walk's index of the directory (dev, ino), or -1 if it has not been reached. */
static int64_t walk_find(const walk *w, dev_t dev, ino_t ino) {
  if (!w->table_cap) return -1;
  for (size_t k = node_hash(dev, ino, w->table_cap);; k = (k + 1) & (w->table_cap - 1)) {
    const int64_t d = w->table[k] - 1;
    if (d < 0) return -1;
    if (w->nodes[d].dev == dev && w->nodes[d].ino == ino) return d;
  }
}

static void table_put(walk *w, int64_t d) {
  size_t k = node_hash(w->nodes[d].dev, w->nodes[d].ino, w->table_cap);
  while (w->table[k]) k = (k + 1) & (w->table_cap - 1);
  w->table[k] = d + 1;
}

/* Adds directory `rel` (found in directory `parent`) to the walk; the caller has checked that
 * (dev, ino) is new. */
static scl_err walk_add_dir(walk *w, const char *rel, int64_t parent, const struct stat *st) {
  if (w->dirs.n == w->cap_nodes) {
    int64_t cap = w->cap_nodes ? 2 * w->cap_nodes : 64;
    dir_node *n = realloc(w->nodes, (size_t)cap * sizeof *n);
    SCL_CHECK(n, SCL_ERR_NOMEM, "cannot list %lld directories", (long long)cap);
    w->nodes = n;
    w->cap_nodes = cap;
  }
  if (2 * ((size_t)w->dirs.n + 1) > w->table_cap) { /* keep the table at most half full */
    free(w->table);
    w->table_cap = w->table_cap ? 2 * w->table_cap : 128;
    w->table = calloc(w->table_cap, sizeof *w->table);
    SCL_CHECK(w->table, SCL_ERR_NOMEM, "directory table of %zu slots", w->table_cap);
    for (int64_t d = 0; d < w->dirs.n; d++) table_put(w, d);
  }
  SCL_CALL(strpool_add(&w->dirs, rel, strlen(rel)));
  const int64_t d = w->dirs.n - 1;
  w->nodes[d] = (dir_node){st->st_dev, st->st_ino, parent};
  table_put(w, d);
  return SCL_OK;
}

/* Refuses subdirectory `name` of directory d (at `path`) when the walk has reached it before. */
static scl_err walk_check_new(const walk *w, const char *class_path, const char *path, int64_t d,
                              const char *name, const struct stat *st) {
  SCL_CHECK(st->st_dev != w->split_dev || st->st_ino != w->split_ino, SCL_ERR_FORMAT,
            "%s/%s loops back to the split directory (a symlink to an ancestor): a class "
            "directory may not contain the classes",
            path, name);
  const int64_t seen = walk_find(w, st->st_dev, st->st_ino);
  if (seen < 0) return SCL_OK;
  const char *rel = strpool_get(&w->dirs, seen);
  int ancestor = 0;
  for (int64_t a = d; a >= 0 && !ancestor; a = w->nodes[a].parent) ancestor = a == seen;
  if (ancestor)
    return SCL_ERROR(SCL_ERR_FORMAT,
                     "%s/%s loops back to %s%s%s (a symlink to an ancestor): the walk of "
                     "class directory %s would never end",
                     path, name, class_path, *rel ? "/" : "", rel, class_path);
  return SCL_ERROR(SCL_ERR_FORMAT,
                   "%s/%s is the directory %s%s%s again (reached twice through symlinks): its "
                   "images would be listed twice",
                   path, name, class_path, *rel ? "/" : "", rel);
}

static int depth_of(const char *rel) {
  int d = *rel ? 1 : 0;
  for (; *rel; rel++) d += *rel == '/';
  return d;
}

/* Lists one directory of the class (dirs entry d): subdirectories join the walk, images the
 * file list. Symlinks are followed, as ImageFolder's os.walk(followlinks=True) does. */
static scl_err walk_dir(walk *w, const char *class_path, int64_t d) {
  char path[PATH_MAX], rel[PATH_MAX];
  snprintf(rel, sizeof rel, "%s", strpool_get(&w->dirs, d));
  SCL_CHECK(snprintf(path, sizeof path, "%s%s%s", class_path, *rel ? "/" : "", rel) < PATH_MAX,
            SCL_ERR_IO, "%s/%s: path too long", class_path, rel);
  DIR *dir = opendir(path);
  SCL_CHECK(dir, SCL_ERR_IO, "%s: cannot list directory: %s", path, strerror(errno));
  scl_err err = SCL_OK;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    SCL_CHECK_GOTO(err, done, fstatat(dirfd(dir), e->d_name, &st, 0) == 0, SCL_ERR_IO,
                   "%s/%s: cannot stat: %s", path, e->d_name, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
      SCL_CHECK_GOTO(err, done, depth_of(rel) < FOLDER_MAX_DEPTH, SCL_ERR_FORMAT,
                     "%s/%s: more than %d directories deep below the class directory %s (images "
                     "are read at most that deep)",
                     path, e->d_name, FOLDER_MAX_DEPTH, class_path);
      SCL_CALL_GOTO(err, walk_check_new(w, class_path, path, d, e->d_name, &st), done);
      char sub[PATH_MAX];
      SCL_CHECK_GOTO(
          err, done,
          snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name) < (int)sizeof sub,
          SCL_ERR_IO, "%s/%s: path too long", path, e->d_name);
      SCL_CALL_GOTO(err, walk_add_dir(w, sub, d, &st), done);
    } else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name)) {
      SCL_CALL_GOTO(err, walk_add_file(w, d, e->d_name, (uint64_t)st.st_size), done);
    } else {
      w->skipped++;
    }
  }
done:
  closedir(dir);
  return err;
}

typedef struct folder_ctx {
  const char *split_path, *split;
  scl_hasher *manifest;
  int64_t label_cap, skipped;
} folder_ctx;

/* Appends class `label`'s images, in ImageFolder order, to ds and to the manifest. */
static scl_err add_class(data_dataset *ds, folder_ctx *ctx, const char *cls, int64_t label) {
  const char *split_path = ctx->split_path;
  char class_path[PATH_MAX];
  SCL_CHECK(snprintf(class_path, sizeof class_path, "%s/%s", split_path, cls) < PATH_MAX,
            SCL_ERR_IO, "%s/%s: path too long", split_path, cls);
  walk w = {0};
  scl_err err = SCL_OK;
  struct stat st;
  SCL_CHECK_GOTO(err, done, stat(ctx->split_path, &st) == 0, SCL_ERR_IO, "%s: cannot stat: %s",
                 ctx->split_path, strerror(errno));
  w.split_dev = st.st_dev;
  w.split_ino = st.st_ino;
  SCL_CHECK_GOTO(err, done, stat(class_path, &st) == 0, SCL_ERR_IO, "%s: cannot stat: %s",
                 class_path, strerror(errno));
  SCL_CHECK_GOTO(err, done, st.st_dev != w.split_dev || st.st_ino != w.split_ino, SCL_ERR_FORMAT,
                 "%s is the split directory itself (a symlink to '.'), not a class directory",
                 class_path);
  SCL_CALL_GOTO(err, walk_add_dir(&w, "", -1, &st), done);
  for (int64_t d = 0; d < w.dirs.n; d++) SCL_CALL_GOTO(err, walk_dir(&w, class_path, d), done);
  SCL_CHECK_GOTO(err, done, w.n_files != 0, SCL_ERR_FORMAT,
                 "%s: class directory has no images (.jpg .jpeg .png .ppm .bmp .pgm .tif .webp)",
                 class_path);
  for (int64_t k = 0; k < w.n_files; k++) {
    w.files[k].dir_s = strpool_get(&w.dirs, w.files[k].dir);
    w.files[k].name_s = w.names.buf + w.files[k].name_off;
  }
  qsort(w.files, (size_t)w.n_files, sizeof *w.files, cmp_file);
  SCL_CALL_GOTO(err, ds_labels_reserve(ds, ds->count + w.n_files, &ctx->label_cap), done);
  for (int64_t k = 0; k < w.n_files; k++) {
    const file_rec *f = &w.files[k];
    SCL_CALL_GOTO(err,
                  strpool_addf(&ds->paths, "%s/%s/%s%s%s", ctx->split, cls, f->dir_s,
                               *f->dir_s ? "/" : "", f->name_s),
                  done);
    ds_manifest_record(ctx->manifest, strpool_get(&ds->paths, ds->count), label, f->size);
    ds->labels[ds->count++] = (int32_t)label;
  }
  ctx->skipped += w.skipped;
done:
  strpool_free(&w.dirs);
  strpool_free(&w.names);
  free(w.files);
  free(w.nodes);
  free(w.table);
  return err;
}

/* The sorted, non-hidden subdirectories of split_path into ds->classes. */
static scl_err list_classes(data_dataset *ds, const char *split_path) {
  DIR *dir = opendir(split_path);
  SCL_CHECK(dir, SCL_ERR_IO, "%s: cannot open the split directory: %s", split_path,
            strerror(errno));
  strpool names = {0};
  const char **sorted = NULL;
  scl_err err = SCL_OK;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    struct stat st;
    if (e->d_name[0] == '.') continue;
    if (fstatat(dirfd(dir), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode))
      SCL_CALL_GOTO(err, strpool_add(&names, e->d_name, strlen(e->d_name)), done);
  }
  SCL_CHECK_GOTO(err, done, names.n != 0, SCL_ERR_FORMAT, "%s: no class directories", split_path);
  sorted = malloc((size_t)names.n * sizeof *sorted);
  SCL_CHECK_GOTO(err, done, sorted, SCL_ERR_NOMEM, "cannot sort %lld classes", (long long)names.n);
  for (int64_t c = 0; c < names.n; c++) sorted[c] = strpool_get(&names, c);
  qsort(sorted, (size_t)names.n, sizeof *sorted, cmp_str);
  for (int64_t c = 0; c < names.n; c++)
    SCL_CALL_GOTO(err, strpool_add(&ds->classes, sorted[c], strlen(sorted[c])), done);
  ds->n_classes = names.n;
done:
  closedir(dir);
  free(sorted);
  strpool_free(&names);
  return err;
}

scl_err ds_folder_open(data_dataset *ds, const data_source *src) {
  if (!src->root || !*src->root) return SCL_ERROR(SCL_ERR_ARG, "folder dataset: no root given");
  struct stat st;
  SCL_CHECK(stat(src->root, &st) == 0, SCL_ERR_IO, "%s: dataset root not found: %s", src->root,
            strerror(errno));
  SCL_CHECK(S_ISDIR(st.st_mode), SCL_ERR_IO, "%s: dataset root is not a directory", src->root);
  char split_path[PATH_MAX];
  SCL_CHECK(snprintf(split_path, sizeof split_path, "%s/%s", src->root, src->split) < PATH_MAX,
            SCL_ERR_IO, "%s/%s: path too long", src->root, src->split);
  if (!(ds->root = strdup(src->root))) return SCL_ERROR(SCL_ERR_NOMEM, "cannot copy root path");
  SCL_CALL(list_classes(ds, split_path));
  folder_ctx ctx = {.split_path = split_path, .split = src->split};
  SCL_CALL(scl_hasher_create(&ctx.manifest));
  ds_manifest_begin(ctx.manifest, "folder", src->split);
  scl_err err = SCL_OK;
  for (int64_t c = 0; c < ds->n_classes && !err; c++)
    err = add_class(ds, &ctx, strpool_get(&ds->classes, c), c);
  ds->manifest = scl_hasher_digest(ctx.manifest);
  scl_hasher_destroy(&ctx.manifest);
  SCL_CALL(err);
  if (ctx.skipped)
    SCL_WARN("%s: skipped %lld non-image files (no image extension)", split_path,
             (long long)ctx.skipped);
  return SCL_OK;
}

scl_err ds_folder_read(const data_dataset *ds, int64_t i, data_image *img) {
  char path[PATH_MAX];
  SCL_CHECK(snprintf(path, sizeof path, "%s/%s", ds->root, strpool_get(&ds->paths, i)) < PATH_MAX,
            SCL_ERR_IO, "%s/%s: path too long", ds->root, strpool_get(&ds->paths, i));
  SCL_CALL(io_image_read(path, img));
  return SCL_OK;
}
