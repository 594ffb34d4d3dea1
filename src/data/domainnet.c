/* domainnet.c: list-file datasets (RanPAC's cleaned DomainNet, docs/methods.md a.4): one text file
 * per domain and split, ROOT/<domain>_<split>.txt, each line "relative/path label". Several domains
 * open as one dataset, concatenated in the order given (DomainNet's test set is the union of all
 * six domains in every session), with each sample's domain recorded.
 *
 * The manifest hashes the list files' bytes, not the images' metadata: the lists define the split.
 * Every listed path is checked at open: one that leaves ROOT (absolute, or with a ".." component)
 * is refused, and each file is stat()ed so a missing image is named (list file and line) before
 * training rather than mid-trial; on a parallel filesystem that walk over 600k images costs
 * seconds to minutes, once per open. Images are read exactly as folder images (ds_folder_read:
 * ROOT/path). ROOT may instead be a file made by `safecl pack` (packed_lists.c): the stored
 * list bytes are parsed the same way, and each listed path is looked up in the pack. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset_impl.h"

#define LIST_MAX_DOMAINS 16
/* Labels index per-class tables sized by the largest label, so a label is refused beyond the
 * bound the synthetic datasets use (DomainNet has 345 classes). */
#define LIST_MAX_CLASSES (1 << 20)

/* Whether a list entry names a file under the root: relative, and no ".." component. */
static int stays_in_root(const char *path) {
  if (path[0] == '/') return 0;
  for (const char *c = path; *c;) {
    size_t n = strcspn(c, "/");
    if (n == 2 && c[0] == '.' && c[1] == '.') return 0;
    c += n;
    while (*c == '/') c++;
  }
  return 1;
}

/* Parses one list line into path and label; returns 0 on success, -1 if malformed. */
static int parse_line(char *line, char **path, long long *label) {
  char *end = line + strlen(line);
  while (end > line && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
    *--end = '\0';
  char *sep = strrchr(line, ' ');
  char *tab = strrchr(line, '\t');
  if (!sep || (tab && tab > sep)) sep = tab;
  if (!sep || sep == line) return -1;
  char *num_end = NULL;
  errno = 0;
  *label = strtoll(sep + 1, &num_end, 10);
  if (errno || num_end == sep + 1 || *num_end || *label < 0) return -1;
  while (sep > line && (sep[-1] == ' ' || sep[-1] == '\t')) sep--;
  *sep = '\0';
  *path = line;
  while (**path == ' ') (*path)++;
  if ((*path)[0] == '.' && (*path)[1] == '/') *path += 2;
  return 0;
}

/* Sample ds->count's byte range in a pack: the image `path` of the list at list_path:lineno. */
static scl_err pack_range(data_dataset *ds, const ds_list_pack *pk, const char *path,
                          const char *list_path, long long lineno, int64_t *pair_cap) {
  int64_t j = ds_list_pack_find(pk, path);
  SCL_CHECK(j >= 0, SCL_ERR_FORMAT, "%s:%lld: listed file '%s' is not in the pack", list_path,
            lineno, path);
  if (2 * (ds->count + 1) > *pair_cap) {
    int64_t nc = *pair_cap ? 2 * *pair_cap : 2048;
    int64_t *grown = NULL;
    SCL_CALL(scl_alloc((size_t)nc * 8, "pack sample ranges", (void **)&grown));
    if (ds->count) memcpy(grown, ds->pack_offsets, (size_t)(2 * ds->count) * 8);
    scl_free(ds->pack_offsets);
    ds->pack_offsets = grown;
    *pair_cap = nc;
  }
  ds->pack_offsets[2 * ds->count] = pk->offsets[j];
  ds->pack_offsets[2 * ds->count + 1] = pk->offsets[j + 1];
  return SCL_OK;
}

/* Appends one domain's list, read from f (named list_path), to ds; with a pack, listed images are
 * looked up in it instead of on disk. */
static scl_err read_list(data_dataset *ds, FILE *f, const char *list_path, int domain,
                         scl_hasher *h, int64_t *cap, int64_t *dom_cap, long long *max_label,
                         const ds_list_pack *pk, int64_t *pair_cap) {
  char line[8192];
  long long lineno = 0;
  scl_err err = SCL_OK;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    /* A longer line would be read in pieces, each taken for a line of its own. */
    SCL_CHECK_GOTO(err, done, strchr(line, '\n') || feof(f), SCL_ERR_FORMAT,
                   "%s:%lld: line longer than %zu bytes", list_path, lineno, sizeof line - 2);
    scl_hasher_update(h, line, strlen(line));
    if (line[0] == '\n' || line[0] == '\0' || (line[0] == '\r' && line[1] == '\n')) continue;
    char *path;
    long long label;
    SCL_CHECK_GOTO(err, done, !parse_line(line, &path, &label), SCL_ERR_FORMAT,
                   "%s:%lld: expected \"relative/path label\"", list_path, lineno);
    SCL_CHECK_GOTO(err, done, label < LIST_MAX_CLASSES, SCL_ERR_FORMAT,
                   "%s:%lld: label %lld is out of range (0 to %d)", list_path, lineno, label,
                   LIST_MAX_CLASSES - 1);
    SCL_CHECK_GOTO(err, done, stays_in_root(path), SCL_ERR_FORMAT,
                   "%s:%lld: '%s' leaves the dataset root (an absolute path or a '..' component)",
                   list_path, lineno, path);
    if (pk) {
      SCL_CALL_GOTO(err, pack_range(ds, pk, path, list_path, lineno, pair_cap), done);
    } else {
      char file[8192 + 4096];
      struct stat st;
      snprintf(file, sizeof file, "%s/%s", ds->root, path);
      SCL_CHECK_GOTO(err, done, stat(file, &st) == 0, SCL_ERR_IO,
                     "%s:%lld: listed file '%s' is missing: %s", list_path, lineno, file,
                     strerror(errno));
      SCL_CHECK_GOTO(err, done, S_ISREG(st.st_mode), SCL_ERR_IO,
                     "%s:%lld: listed file '%s' is %s, not a regular file", list_path, lineno, file,
                     scl_file_kind(st.st_mode));
    }
    if (label > *max_label) *max_label = label;
    SCL_CALL_GOTO(err, ds_labels_reserve(ds, ds->count + 1, cap), done);
    if (ds->count + 1 > *dom_cap) {
      int64_t nc = *dom_cap ? 2 * *dom_cap : 1024;
      int32_t *grown = realloc(ds->domain_of, (size_t)nc * sizeof(int32_t));
      SCL_CHECK_GOTO(err, done, grown, SCL_ERR_NOMEM, "%s: domain table", list_path);
      ds->domain_of = grown;
      *dom_cap = nc;
    }
    ds->labels[ds->count] = (int32_t)label;
    ds->domain_of[ds->count] = domain;
    SCL_CALL_GOTO(err, strpool_add(&ds->paths, path, strlen(path)), done);
    ds->count++;
  }
  if (ferror(f)) err = SCL_ERROR(SCL_ERR_IO, "%s: read error", list_path);
done:
  return err;
}

/* Class names from the second path component ("real/<class>/file.jpg") where there is one. */
static scl_err name_classes(data_dataset *ds) {
  const char **names = calloc((size_t)ds->n_classes, sizeof *names);
  SCL_CHECK(names, SCL_ERR_NOMEM, "class names");
  for (int64_t i = 0; i < ds->count; i++)
    if (!names[ds->labels[i]]) names[ds->labels[i]] = strpool_get(&ds->paths, i);
  scl_err err = SCL_OK;
  for (int64_t c = 0; c < ds->n_classes && !err; c++) {
    const char *p = names[c], *a = p ? strchr(p, '/') : NULL, *b = a ? strchr(a + 1, '/') : NULL;
    if (b)
      err = strpool_add(&ds->classes, a + 1, (size_t)(b - a - 1));
    else
      err = strpool_addf(&ds->classes, "class_%03lld", (long long)c);
  }
  free(names);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* The stored list "<domain>_<split>" of a pack, as a stream; list_path becomes its name in
 * messages, "PACK:<domain>_<split>.txt". */
static scl_err open_stored_list(const ds_list_pack *pk, const char *root, const char *domain,
                                const char *split, char *list_path, size_t cap, FILE **f) {
  char name[1100];
  snprintf(name, sizeof name, "%s_%s", domain, split);
  snprintf(list_path, cap, "%s:%s.txt", root, name);
  int64_t l = 0;
  while (l < pk->n_lists && strcmp(pk->lists[l], name)) l++;
  SCL_CHECK(l < pk->n_lists, SCL_ERR_ARG,
            "%s: the pack holds no %s list for domain '%s' (dataset.domains); it was packed from "
            "a root without %s.txt",
            root, split, domain, name);
  int64_t a = pk->list_offsets[l], b = pk->list_offsets[l + 1];
  /* an empty list reads as one NUL byte, which the reader skips and hashes as nothing */
  *f = b > a ? fmemopen((void *)(pk->list_blob + a), (size_t)(b - a), "r")
             : fmemopen((void *)"", 1, "r");
  SCL_CHECK(*f, SCL_ERR_NOMEM, "%s: cannot open the stored list: %s", list_path, strerror(errno));
  return SCL_OK;
}

scl_err ds_list_open(data_dataset *ds, const data_source *src) {
  SCL_CHECK(src->root && src->root[0] && src->domains && src->domains[0], SCL_ERR_ARG,
            "domainnet datasets need a root and a list of domains");
  ds->root = strdup(src->root);
  SCL_CHECK(ds->root, SCL_ERR_NOMEM, "dataset root");
  scl_hasher *h = NULL;
  SCL_CALL(scl_hasher_create(&h));
  ds_manifest_begin(h, "domainnet", src->split);
  int64_t cap = 0, dom_cap = 0, pair_cap = 0;
  long long max_label = -1;
  scl_err err = SCL_OK;
  ds_list_pack pk = {0};
  int packed = ds->kind == DS_LIST_PACKED;
  if (packed) err = ds_list_pack_open(ds, src->root, &pk);
  char domains[1024];
  snprintf(domains, sizeof domains, "%s", src->domains);
  int d = 0;
  for (char *save = NULL, *tok = strtok_r(domains, ",", &save); tok && !err;
       tok = strtok_r(NULL, ",", &save), d++) {
    while (*tok == ' ') tok++;
    char list_path[4096];
    snprintf(list_path, sizeof list_path, "%s/%s_%s.txt", src->root, tok, src->split);
    FILE *f = NULL;
    if (d >= LIST_MAX_DOMAINS)
      err = SCL_ERROR(SCL_ERR_ARG, "more than %d domains in '%s'", LIST_MAX_DOMAINS, src->domains);
    else if (packed)
      err = open_stored_list(&pk, src->root, tok, src->split, list_path, sizeof list_path, &f);
    else
      err = scl_fopen_regular(list_path, "list file", &f);
    if (!err)
      err = read_list(ds, f, list_path, d, h, &cap, &dom_cap, &max_label, packed ? &pk : NULL,
                      &pair_cap);
    if (f) fclose(f);
  }
  ds_list_pack_free(&pk);
  ds->n_domains = d;
  ds->manifest = scl_hasher_digest(h);
  scl_hasher_destroy(&h);
  if (err) return SCL_TRACE(err);
  SCL_CHECK(ds->count != 0, SCL_ERR_FORMAT, "%s: the %s lists of '%s' hold no samples", src->root,
            src->split, src->domains);
  ds->n_classes = src->n_classes > 0 ? src->n_classes : max_label + 1;
  SCL_CHECK(max_label < ds->n_classes, SCL_ERR_FORMAT,
            "%s: label %lld in the %s lists but only %lld classes", src->root, max_label,
            src->split, (long long)ds->n_classes);
  SCL_CALL(name_classes(ds));
  return SCL_OK;
}
