/* config.c: parse libconfig files and key=value overrides into a struct described by a key table.
 *
 * Arguments apply left to right, each file or override over what came before. A file is walked
 * setting by setting; every leaf must name a key of the table (an unknown key is an error with
 * file:line and the closest known keys, did_you_mean), and its libconfig type must fit the key's
 * type. Overrides are parsed from text with the same rules. A renamed key's old name is accepted
 * with a warning, or refused naming the new one. A file in the flat `dotted.name = value;` form
 * that older trial.h5 files hold as `config` is read line by line (load_flat). What this does not do: merge several schemas or
 * keep lists of groups; commands with richer structure (sweeps) layer those on top of one table
 * each. */
#include "safecl/config.h"

#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The state of one load: which override (if any) last set each key, so that a file applied after
 * it can say that it sets the key again. */
typedef struct loader {
  const cfg_schema *schema;
  void *cfg;
  const char **set_by; /* n_keys: the override that last set the key, or NULL */
} loader;

static scl_err find_key(const cfg_schema *s, const char *name, const char *where,
                        const cfg_key **out) {
  *out = NULL;
  for (int i = 0; i < s->n_keys; i++)
    if (!strcmp(s->keys[i].name, name)) {
      *out = &s->keys[i];
      return SCL_OK;
    }
  for (int i = 0; i < s->n_renamed; i++) {
    const cfg_renamed *r = &s->renamed[i];
    if (strcmp(r->old_name, name)) continue;
    SCL_CHECK(!r->refused, SCL_ERR_ARG, "%s: key '%s' was renamed to '%s'%s%s", where, name,
              r->name, r->note ? ": " : "", r->note ? r->note : "");
    SCL_WARN("%s: key '%s' is deprecated; use '%s'%s%s%s", where, name, r->name,
             r->note ? " (" : "", r->note ? r->note : "", r->note ? ")" : "");
    for (int j = 0; j < s->n_keys; j++)
      if (!strcmp(s->keys[j].name, r->name)) *out = &s->keys[j];
    return SCL_OK;
  }
  return SCL_OK;
}

/* Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a substring):
 * insertions, deletions, substitutions and swaps of two neighbours cost 1. Names are short. */
static int edit_distance(const char *a, const char *b) {
  enum { MAXN = 128 };
  size_t n = strlen(a), m = strlen(b);
  if (n >= MAXN || m >= MAXN) return MAXN;
  static _Thread_local int d[MAXN][MAXN];
  for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= n; i++)
    for (size_t j = 1; j <= m; j++) {
      int cost = a[i - 1] != b[j - 1];
      int best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[n][m];
}

static const char *last_part(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot ? dot + 1 : name;
}

/* " (did you mean 'a' or 'b'?)" for an unknown key: the known keys within an edit distance of
 * max(2, length / 5) of it (or of a renamed key's old name: then the new name), or with the same
 * last part in another section ("data.crop" -> "dataset.crop"), nearest first, at most three;
 * "" when none is near. A name that is a section of the table ("dataset") says so. */
static void did_you_mean(const cfg_schema *s, const char *name, char *buf, size_t cap) {
  buf[0] = '\0';
  size_t len = strlen(name);
  for (int i = 0; i < s->n_keys; i++)
    if (!strncmp(s->keys[i].name, name, len) && s->keys[i].name[len] == '.') {
      snprintf(buf, cap, " ('%s' is a section: set its keys, e.g. '%s')", name, s->keys[i].name);
      return;
    }
  int limit = len / 5 > 2 ? (int)(len / 5) : 2;
  const char *best[3] = {NULL, NULL, NULL};
  int dist[3] = {0, 0, 0}, n = 0;
  for (int i = 0; i < s->n_keys + s->n_renamed; i++) {
    const char *cand = i < s->n_keys ? s->keys[i].name : s->renamed[i - s->n_keys].name;
    const char *near = i < s->n_keys ? cand : s->renamed[i - s->n_keys].old_name;
    int d = edit_distance(name, near);
    if (d > limit && strcmp(last_part(name), last_part(near)) != 0) continue;
    if (d > limit) d = limit + 1; /* same last part: after the near misses */
    int dup = 0;
    for (int k = 0; k < n; k++) dup |= !strcmp(best[k], cand);
    if (dup) continue;
    int at = n < 3 ? n++ : 3;
    while (at > 0 && dist[at - 1] > d) {
      if (at < 3) {
        best[at] = best[at - 1];
        dist[at] = dist[at - 1];
      }
      at--;
    }
    if (at < 3) {
      best[at] = cand;
      dist[at] = d;
    }
  }
  size_t o = 0;
  for (int k = 0; k < n && o < cap; k++)
    o += (size_t)snprintf(buf + o, cap - o, "%s'%s'",
                          k == 0       ? " (did you mean "
                          : k + 1 == n ? " or "
                                       : ", ",
                          best[k]);
  if (n && o < cap) snprintf(buf + o, cap - o, "?)");
}

static scl_err unknown_key(const cfg_schema *s, const char *name, const char *where) {
  char hint[512];
  did_you_mean(s, name, hint, sizeof hint);
  return SCL_ERROR(SCL_ERR_ARG, "%s: unknown key '%s' for 'safecl %s'%s; see safecl %s --help",
                   where, name, s->command, hint, s->command);
}

static void *field(void *cfg, const cfg_key *k) { return (char *)cfg + k->offset; }

static const char *type_name(cfg_type t) {
  static const char *const names[] = {"integer", "number", "boolean", "string", "list of numbers"};
  return names[t];
}

static scl_err check_bounds(const cfg_key *k, double v, const char *where) {
  if (!isfinite(v) || v < k->min || v > k->max) {
    if (k->type == CFG_INT) /* integers in full: 4294969289, not 4.29497e+09 */
      return SCL_ERROR(SCL_ERR_ARG, "%s: %s = %.17g is out of range [%.17g, %.17g]", where, k->name,
                       v, k->min, k->max);
    return SCL_ERROR(SCL_ERR_ARG, "%s: %s = %g is out of range [%g, %g]", where, k->name, v, k->min,
                     k->max);
  }
  return SCL_OK;
}

const char *cfg_key_choices(const cfg_key *k) {
  return k->choices || !k->choices_of ? k->choices : k->choices_of();
}

static scl_err check_choice(const cfg_key *k, const char *v, const char *where) {
  const char *choices = cfg_key_choices(k);
  if (!choices) return SCL_OK;
  size_t len = strlen(v);
  for (const char *c = choices; *c;) {
    const char *bar = strchr(c, '|');
    size_t n = bar ? (size_t)(bar - c) : strlen(c);
    if (n == len && !strncmp(c, v, n)) return SCL_OK;
    c += n + (bar ? 1 : 0);
  }
  return SCL_ERROR(SCL_ERR_ARG, "%s: %s = \"%s\" is not one of %s", where, k->name, v, choices);
}

static scl_err set_string(const cfg_key *k, void *cfg, const char *v, const char *where) {
  SCL_CALL(check_choice(k, v, where));
  char **slot = field(cfg, k);
  char *copy = strdup(v);
  SCL_CHECK(copy, SCL_ERR_NOMEM, "copying %s", k->name);
  free(*slot);
  *slot = copy;
  return SCL_OK;
}

/* Parses one value from text (defaults and overrides). */
static scl_err set_from_text(const cfg_key *k, void *cfg, const char *text, const char *where) {
  char *end = NULL;
  errno = 0;
  switch (k->type) {
    case CFG_INT: {
      long long v = strtoll(text, &end, 10);
      if (errno || end == text || *end)
        return SCL_ERROR(SCL_ERR_ARG, "%s: %s = \"%s\" is not an integer", where, k->name, text);
      SCL_CALL(check_bounds(k, (double)v, where));
      *(int64_t *)field(cfg, k) = v;
      return SCL_OK;
    }
    case CFG_FLOAT: {
      double v = strtod(text, &end);
      if (errno || end == text || *end)
        return SCL_ERROR(SCL_ERR_ARG, "%s: %s = \"%s\" is not a number", where, k->name, text);
      SCL_CALL(check_bounds(k, v, where));
      *(double *)field(cfg, k) = v;
      return SCL_OK;
    }
    case CFG_BOOL: {
      int v;
      if (!strcmp(text, "true") || !strcmp(text, "1"))
        v = 1;
      else if (!strcmp(text, "false") || !strcmp(text, "0"))
        v = 0;
      else
        return SCL_ERROR(SCL_ERR_ARG, "%s: %s = \"%s\" is not true/false", where, k->name, text);
      *(int *)field(cfg, k) = v;
      return SCL_OK;
    }
    case CFG_STRING: {
      size_t n = strlen(text);
      if (n >= 2 && text[0] == '"' && text[n - 1] == '"') {
        char *inner = strndup(text + 1, n - 2);
        SCL_CHECK(inner, SCL_ERR_NOMEM, "copying %s", k->name);
        scl_err err = set_string(k, cfg, inner, where);
        free(inner);
        return err;
      }
      return set_string(k, cfg, text, where);
    }
    case CFG_FLOATS: {
      cfg_floats f = {0};
      const char *p = text;
      while (*p == '[' || *p == '(' || *p == ' ') p++;
      while (*p && *p != ']' && *p != ')') {
        SCL_CHECK(f.n != CFG_FLOATS_MAX, SCL_ERR_ARG, "%s: %s has more than %d values", where,
                  k->name, CFG_FLOATS_MAX);
        double v = strtod(p, &end);
        SCL_CHECK(end != p, SCL_ERR_ARG, "%s: %s = \"%s\" is not a list of numbers", where, k->name,
                  text);
        SCL_CALL(check_bounds(k, v, where));
        f.v[f.n++] = v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
      }
      *(cfg_floats *)field(cfg, k) = f;
      return SCL_OK;
    }
  }
  return SCL_ERROR(SCL_ERR_INTERNAL, "key %s has no type", k->name);
}

/* Copies one libconfig leaf into the struct, checking its type. */
static scl_err set_from_setting(const cfg_key *k, void *cfg, config_setting_t *s,
                                const char *where) {
  int t = config_setting_type(s);
  switch (k->type) {
    case CFG_INT:
      if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) break;
      SCL_CALL(check_bounds(k, (double)config_setting_get_int64(s), where));
      *(int64_t *)field(cfg, k) = config_setting_get_int64(s);
      return SCL_OK;
    case CFG_FLOAT: {
      if (t != CONFIG_TYPE_FLOAT && t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) break;
      double v = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                        : (double)config_setting_get_int64(s);
      SCL_CALL(check_bounds(k, v, where));
      *(double *)field(cfg, k) = v;
      return SCL_OK;
    }
    case CFG_BOOL:
      if (t != CONFIG_TYPE_BOOL) break;
      *(int *)field(cfg, k) = config_setting_get_bool(s);
      return SCL_OK;
    case CFG_STRING:
      if (t != CONFIG_TYPE_STRING) break;
      return set_string(k, cfg, config_setting_get_string(s), where);
    case CFG_FLOATS: {
      if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) break;
      int n = config_setting_length(s);
      SCL_CHECK(n <= CFG_FLOATS_MAX, SCL_ERR_ARG, "%s: %s has %d values, at most %d allowed", where,
                k->name, n, CFG_FLOATS_MAX);
      cfg_floats f = {.n = n};
      for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int et = config_setting_type(e);
        if (et != CONFIG_TYPE_FLOAT && et != CONFIG_TYPE_INT && et != CONFIG_TYPE_INT64)
          return SCL_ERROR(SCL_ERR_ARG, "%s: %s[%d] is not a number", where, k->name, i);
        f.v[i] = et == CONFIG_TYPE_FLOAT ? config_setting_get_float(e)
                                         : (double)config_setting_get_int64(e);
        SCL_CALL(check_bounds(k, f.v[i], where));
      }
      *(cfg_floats *)field(cfg, k) = f;
      return SCL_OK;
    }
  }
  return SCL_ERROR(SCL_ERR_ARG, "%s: %s must be of type %s", where, k->name, type_name(k->type));
}

/* The key's index in the table. */
static int key_index(const cfg_schema *s, const cfg_key *k) { return (int)(k - s->keys); }

/* Walks a group recursively, building dotted names. */
static scl_err walk_group(loader *ld, config_setting_t *group, const char *prefix) {
  int n = config_setting_length(group);
  for (int i = 0; i < n; i++) {
    config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
    char name[256], where[1100];
    snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", config_setting_name(s));
    const char *file = config_setting_source_file(s);
    snprintf(where, sizeof where, "%s:%d", file ? file : "?", config_setting_source_line(s));
    if (!prefix[0] && !strcmp(name, "include")) continue; /* layered files: see load_file */
    if (config_setting_type(s) == CONFIG_TYPE_GROUP) {
      SCL_CALL(walk_group(ld, s, name));
      continue;
    }
    const cfg_key *k = NULL;
    SCL_CALL(find_key(ld->schema, name, where, &k));
    if (!k) return unknown_key(ld->schema, name, where);
    SCL_CALL(set_from_setting(k, ld->cfg, s, where));
    const char **by = &ld->set_by[key_index(ld->schema, k)];
    if (*by)
      SCL_WARN(
          "%s: sets %s again after the override %s given before it (arguments apply left to "
          "right; the later one wins)",
          where, k->name, *by);
    *by = NULL;
  }
  return SCL_OK;
}

static scl_err load_file(loader *ld, const char *path, int depth);

/* `include = "a.cfg";` or `include = ["a.cfg", "b.cfg"];` at top level loads those files first
 * (relative to this file's directory), so that this file's keys override theirs. libconfig's
 * own @include is textual and cannot override, which is why layering is done here. */
static scl_err load_includes(loader *ld, config_t *lc, const char *dir, int depth) {
  config_setting_t *inc = config_lookup(lc, "include");
  if (!inc) return SCL_OK;
  int is_str = config_setting_type(inc) == CONFIG_TYPE_STRING;
  SCL_CHECK(is_str || config_setting_is_array(inc) || config_setting_is_list(inc), SCL_ERR_ARG,
            "%s:%d: include must be a string or a list of strings", config_setting_source_file(inc),
            config_setting_source_line(inc));
  int n = is_str ? 1 : config_setting_length(inc);
  for (int i = 0; i < n; i++) {
    config_setting_t *e = is_str ? inc : config_setting_get_elem(inc, (unsigned)i);
    const char *rel = e ? config_setting_get_string(e) : NULL;
    SCL_CHECK(rel, SCL_ERR_ARG, "%s:%d: include must be a string or a list of strings",
              config_setting_source_file(inc), config_setting_source_line(inc));
    char path[4096];
    if (rel[0] == '/' || !dir[0])
      snprintf(path, sizeof path, "%s", rel);
    else
      snprintf(path, sizeof path, "%s/%s", dir, rel);
    SCL_CALL(load_file(ld, path, depth + 1));
  }
  return SCL_OK;
}

/* 0 if line [p, p + n) is not `name = value;`, else 1 + the dots in the name. */
static int is_flat_line(const char *p, size_t n) {
  size_t i = 0, dots = 0;
  for (; i < n; i++) {
    const char c = p[i];
    const int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i && ((c >= '0' && c <= '9') || c == '.'))) break;
    dots += c == '.';
  }
  return i && i + 3 < n && !strncmp(p + i, " = ", 3) && p[n - 1] == ';' ? 1 + (int)dots : 0;
}

/* The flat form safecl wrote into trial.h5's `config` attribute before printed configs read
 * back as libconfig (the form `identity_config` still has): one `dotted.name = value;` per line,
 * strings quoted with \" and \\ escaped. Read here line by line, each as the override
 * `dotted.name=value` would be, with file:line in messages; *flat = 0 (nothing read) for any
 * other text, which libconfig then reads. */
static scl_err load_flat(loader *ld, const char *path, int *flat) {
  *flat = 0;
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return SCL_OK; /* cfg_read_libconfig says */
  int fd = -1;
  SCL_CALL(scl_open_regular(path, "config file", &fd));
  FILE *f = fdopen(fd, "r");
  if (!f) close(fd);
  SCL_CHECK(f, SCL_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  char *line = NULL, where[4200];
  size_t cap = 0;
  scl_err err = SCL_OK;
  int other = 0, dotted = 0; /* a line of another form; lines with dotted names (which
                                libconfig refuses: a file without one is libconfig's) */
  for (int pass = 0; !err && !other && pass < 2; pass++) {
    rewind(f);
    ssize_t n;
    for (int no = 1; !err && !other && (n = getline(&line, &cap, f)) >= 0; no++) {
      while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
      line[n] = '\0';
      if (!n || line[0] == '#' || !strncmp(line, "//", 2)) continue;
      if (pass == 0) {
        const int form = is_flat_line(line, (size_t)n);
        other = !form;
        dotted += form > 1;
        continue;
      }
      char *eq = strstr(line, " = "), *v = eq + 3, *o = v;
      *eq = '\0';
      line[n - 1] = '\0';                                               /* the ';' */
      for (char *c = v; *c; c++) *o++ = *c == '\\' && c[1] ? *++c : *c; /* \" and \\ */
      *o = '\0';
      snprintf(where, sizeof where, "%s:%d", path, no);
      const cfg_key *k = NULL;
      err = find_key(ld->schema, line, where, &k);
      if (!err && !k) err = unknown_key(ld->schema, line, where);
      if (!err) err = set_from_text(k, ld->cfg, v, where);
      if (!err) ld->set_by[key_index(ld->schema, k)] = NULL;
    }
    if (!dotted) other = 1;
  }
  free(line);
  fclose(f);
  if (err) return SCL_TRACE(err);
  *flat = !other;
  if (*flat)
    SCL_INFO(
        "%s: read as the flat `name = value;` form of trial.h5 files from before configs "
        "were printed as libconfig",
        path);
  return SCL_OK;
}

static scl_err load_file(loader *ld, const char *path, int depth) {
  SCL_CHECK(depth <= 16, SCL_ERR_ARG, "%s: includes nested more than 16 deep (a cycle?)", path);
  int flat = 0;
  SCL_CALL(load_flat(ld, path, &flat));
  if (flat) return SCL_OK;
  config_t lc;
  config_init(&lc);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = '\0';
    config_set_include_dir(&lc, dir);
  } else {
    dir[0] = '\0';
  }
  scl_err err = cfg_read_libconfig(&lc, path);
  if (!err) err = load_includes(ld, &lc, dir, depth);
  if (!err) err = walk_group(ld, config_root_setting(&lc), "");
  if (err) SCL_TRACE(err);
  config_destroy(&lc);
  return err;
}

int cfg_is_override(const char *arg) {
  const char *eq = strchr(arg, '=');
  const char *sl = strchr(arg, '/');
  return eq && (!sl || eq < sl) && eq != arg;
}

static scl_err apply_override(loader *ld, const char *arg) {
  const char *eq = strchr(arg, '=');
  SCL_CHECK(eq, SCL_ERR_ARG, "override '%s' is not of the form key=value", arg);
  char name[256];
  snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
  const cfg_key *k = NULL;
  SCL_CALL(find_key(ld->schema, name, "command line", &k));
  if (!k) return unknown_key(ld->schema, name, "command line");
  SCL_CALL(set_from_text(k, ld->cfg, eq + 1, "command line"));
  ld->set_by[key_index(ld->schema, k)] = arg;
  return SCL_OK;
}

/* Defaults, then the files, then the overrides, or (files NULL) the mixed `args` in order. */
static scl_err load(const cfg_schema *schema, const char *const *paths, int n_paths, int n_args,
                    char *const *args, void *out) {
  for (int i = 0; i < schema->n_keys; i++)
    SCL_CALL(set_from_text(&schema->keys[i], out, schema->keys[i].def, "default"));
  loader ld = {schema, out, calloc((size_t)schema->n_keys + 1, sizeof(const char *))};
  SCL_CHECK(ld.set_by, SCL_ERR_NOMEM, "config: key table of %d keys", schema->n_keys);
  scl_err err = SCL_OK;
  for (int i = 0; !err && i < n_paths; i++) err = load_file(&ld, paths[i], 0);
  for (int i = 0; !err && i < n_args; i++)
    err = paths || cfg_is_override(args[i]) ? apply_override(&ld, args[i])
                                            : load_file(&ld, args[i], 0);
  free(ld.set_by);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err cfg_load_args(const cfg_schema *schema, int n_args, char *const *args, void *out) {
  SCL_CALL(load(schema, NULL, 0, n_args, args, out));
  return SCL_OK;
}

scl_err cfg_load_files(const cfg_schema *schema, const char *const *paths, int n_paths,
                       int n_overrides, char *const *overrides, void *out) {
  static const char *const none[1] = {NULL};
  SCL_CALL(load(schema, paths ? paths : none, n_paths, n_overrides, overrides, out));
  return SCL_OK;
}

scl_err cfg_load(const cfg_schema *schema, const char *path, int n_overrides,
                 char *const *overrides, void *out) {
  SCL_CALL(cfg_load_files(schema, &path, path ? 1 : 0, n_overrides, overrides, out));
  return SCL_OK;
}

void cfg_free(const cfg_schema *schema, void *cfg) {
  for (int i = 0; i < schema->n_keys; i++) {
    if (schema->keys[i].type != CFG_STRING) continue;
    char **slot = field(cfg, &schema->keys[i]);
    free(*slot);
    *slot = NULL;
  }
}
