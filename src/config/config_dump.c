/* config_dump.c: the effective config as libconfig text, the flat text trial identity hashes, and
 * the --help table.
 *
 * The libconfig dump nests dotted names into groups so that it is a config file that reads back
 * to the same values: floats in the shortest decimal that parses back to the same double,
 * integers outside 32 bits with the L suffix libconfig 1.5 needs, strings escaped. The identity
 * text is the earlier flat form (`name = value;`, numbers with %.17g), kept byte for byte: every
 * trial id is a hash of it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/config.h"

static const void *cfield(const void *cfg, const cfg_key *k) {
  return (const char *)cfg + k->offset;
}

void cfg_format_double(double v, char *buf, size_t cap) {
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(buf, cap, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", cap - strlen(buf) - 1);
}

/* The value in the flat identity form (%.17g numbers). */
static void identity_text(const cfg_key *k, const void *cfg, char *buf, size_t cap) {
  switch (k->type) {
    case CFG_FLOAT: {
      double v = *(const double *)cfield(cfg, k);
      snprintf(buf, cap, "%.17g", v);
      if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", cap - strlen(buf) - 1);
      return;
    }
    case CFG_FLOATS: {
      const cfg_floats *f = cfield(cfg, k);
      size_t o = (size_t)snprintf(buf, cap, "[");
      for (int i = 0; i < f->n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%.17g", i ? ", " : "", f->v[i]);
      if (o < cap) snprintf(buf + o, cap - o, "]");
      return;
    }
    default:
      break;
  }
  /* integers, booleans and strings print the same in both forms, but for the L suffix */
  if (k->type == CFG_INT) {
    snprintf(buf, cap, "%lld", (long long)*(const int64_t *)cfield(cfg, k));
    return;
  }
  if (k->type == CFG_BOOL) {
    snprintf(buf, cap, "%s", *(const int *)cfield(cfg, k) ? "true" : "false");
    return;
  }
  const char *s = *(char *const *)cfield(cfg, k);
  size_t o = 0;
  buf[o++] = '"';
  for (; s && *s && o + 3 < cap; s++) {
    if (*s == '"' || *s == '\\') buf[o++] = '\\';
    buf[o++] = *s;
  }
  buf[o++] = '"';
  buf[o] = '\0';
}

/* The value as libconfig reads it back. */
static void libconfig_text(const cfg_key *k, const void *cfg, char *buf, size_t cap) {
  switch (k->type) {
    case CFG_INT: {
      int64_t v = *(const int64_t *)cfield(cfg, k);
      snprintf(buf, cap, "%lld%s", (long long)v, v < INT32_MIN || v > INT32_MAX ? "L" : "");
      return;
    }
    case CFG_FLOAT:
      cfg_format_double(*(const double *)cfield(cfg, k), buf, cap);
      return;
    case CFG_FLOATS: {
      const cfg_floats *f = cfield(cfg, k);
      size_t o = (size_t)snprintf(buf, cap, "[");
      for (int i = 0; i < f->n && o + 40 < cap; i++) {
        o += (size_t)snprintf(buf + o, cap - o, "%s", i ? ", " : "");
        cfg_format_double(f->v[i], buf + o, cap - o);
        o += strlen(buf + o);
      }
      if (o < cap) snprintf(buf + o, cap - o, "]");
      return;
    }
    case CFG_BOOL:
      snprintf(buf, cap, "%s", *(const int *)cfield(cfg, k) ? "true" : "false");
      return;
    case CFG_STRING: {
      const char *s = *(char *const *)cfield(cfg, k);
      size_t o = 0;
      buf[o++] = '"';
      for (; s && *s && o + 6 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
          buf[o++] = '\\';
          buf[o++] = (char)c;
        } else if (c == '\n' || c == '\t' || c == '\r') {
          buf[o++] = '\\';
          buf[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else if (c < 0x20) {
          o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        } else {
          buf[o++] = (char)c;
        }
      }
      buf[o++] = '"';
      buf[o] = '\0';
      return;
    }
  }
}

/* 1 if an `added` key holds its default (as the default text parses). */
static int at_default(const cfg_key *k, const void *cfg) {
  const void *f = cfield(cfg, k);
  switch (k->type) {
    case CFG_INT:
      return *(const int64_t *)f == strtoll(k->def, NULL, 10);
    case CFG_FLOAT:
      return *(const double *)f == strtod(k->def, NULL);
    case CFG_BOOL:
      return *(const int *)f == (!strcmp(k->def, "true") || !strcmp(k->def, "1"));
    case CFG_STRING: {
      const char *s = *(char *const *)f;
      return s && !strcmp(s, k->def);
    }
    case CFG_FLOATS:
      return ((const cfg_floats *)f)->n == 0 && !strcmp(k->def, "[]");
  }
  return 0;
}

typedef struct out_buf {
  char *p;
  size_t len, cap;
} out_buf;

static scl_err put(out_buf *b, const char *s) {
  size_t n = strlen(s);
  if (b->len + n + 1 > b->cap) {
    size_t cap = 2 * (b->len + n + 1) + 1024;
    char *g = realloc(b->p, cap);
    SCL_CHECK(g, SCL_ERR_NOMEM, "config dump of %zu bytes", cap);
    b->p = g;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n + 1);
  b->len += n;
  return SCL_OK;
}

static scl_err indent(out_buf *b, int depth) {
  for (int d = 0; d < depth; d++) SCL_CALL(put(b, "  "));
  return SCL_OK;
}

/* The keys under `prefix` (ending in '.' or empty), in table order; a group is printed where its
 * first key appears. */
static scl_err dump_group(const cfg_schema *s, const void *cfg, const char *prefix, int depth,
                          out_buf *b) {
  size_t plen = strlen(prefix);
  for (int i = 0; i < s->n_keys; i++) {
    const char *name = s->keys[i].name;
    if (strncmp(name, prefix, plen)) continue;
    const char *rest = name + plen, *dot = strchr(rest, '.');
    if (!dot) {
      SCL_CALL(indent(b, depth));
      char val[4200];
      libconfig_text(&s->keys[i], cfg, val, sizeof val);
      SCL_CALL(put(b, rest));
      SCL_CALL(put(b, " = "));
      SCL_CALL(put(b, val));
      SCL_CALL(put(b, ";\n"));
      continue;
    }
    size_t glen = (size_t)(dot - name) + 1; /* prefix + group + '.' */
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) seen = !strncmp(s->keys[j].name, name, glen);
    if (seen) continue;
    char group[256];
    snprintf(group, sizeof group, "%.*s", (int)glen, name);
    char line[300];
    snprintf(line, sizeof line, "%.*s = {\n", (int)(dot - rest), rest);
    SCL_CALL(indent(b, depth));
    SCL_CALL(put(b, line));
    SCL_CALL(dump_group(s, cfg, group, depth + 1, b));
    SCL_CALL(indent(b, depth));
    SCL_CALL(put(b, "};\n"));
  }
  return SCL_OK;
}

scl_err cfg_dump(const cfg_schema *schema, const void *cfg, char **text) {
  out_buf b = {0};
  scl_err err = put(&b, "");
  if (!err) err = dump_group(schema, cfg, "", 0, &b);
  if (err) {
    free(b.p);
    return SCL_TRACE(err);
  }
  *text = b.p;
  return SCL_OK;
}

scl_err cfg_dump_identity(const cfg_schema *schema, const void *cfg, char **text) {
  out_buf b = {0};
  scl_err err = put(&b, "");
  for (int i = 0; !err && i < schema->n_keys; i++) {
    const cfg_key *k = &schema->keys[i];
    if (k->no_identity || (k->added && at_default(k, cfg))) continue;
    char val[4200];
    identity_text(k, cfg, val, sizeof val);
    if (!err) err = put(&b, k->name);
    if (!err) err = put(&b, " = ");
    if (!err) err = put(&b, val);
    if (!err) err = put(&b, ";\n");
  }
  if (err) {
    free(b.p);
    return SCL_TRACE(err);
  }
  *text = b.p;
  return SCL_OK;
}

void cfg_print_help(const cfg_schema *schema, FILE *f) {
  fprintf(f, "Configuration keys of 'safecl %s' (set in the config file or as key=value):\n",
          schema->command);
  for (int i = 0; i < schema->n_keys; i++) {
    const cfg_key *k = &schema->keys[i];
    static const char *const tn[] = {"int", "float", "bool", "string", "floats"};
    fprintf(f, "  %-26s %-7s default %s", k->name, tn[k->type], k->def[0] ? k->def : "\"\"");
    if (k->type == CFG_INT || k->type == CFG_FLOAT || k->type == CFG_FLOATS)
      fprintf(f, "  [%g, %g]", k->min, k->max);
    if (cfg_key_choices(k)) fprintf(f, "  {%s}", cfg_key_choices(k));
    fprintf(f, "\n      %s\n", k->help);
  }
}
