/* config_dump.c: the canonical effective-config text and the --help table.
 *
 * The dump is what provenance records and what trial identity hashes, so it is stable: keys in
 * table order, numbers printed with %.17g (round-trip exact), strings quoted with escapes. */
#include <stdlib.h>
#include <string.h>

#include "safecl/config.h"

static const void *cfield(const void *cfg, const cfg_key *k) {
  return (const char *)cfg + k->offset;
}

static void value_text(const cfg_key *k, const void *cfg, char *buf, size_t cap) {
  switch (k->type) {
    case CFG_INT:
      snprintf(buf, cap, "%lld", (long long)*(const int64_t *)cfield(cfg, k));
      break;
    case CFG_FLOAT: {
      double v = *(const double *)cfield(cfg, k);
      snprintf(buf, cap, "%.17g", v);
      if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", cap - strlen(buf) - 1);
      break;
    }
    case CFG_BOOL:
      snprintf(buf, cap, "%s", *(const int *)cfield(cfg, k) ? "true" : "false");
      break;
    case CFG_STRING: {
      const char *s = *(char *const *)cfield(cfg, k);
      size_t o = 0;
      buf[o++] = '"';
      for (; s && *s && o + 3 < cap; s++) {
        if (*s == '"' || *s == '\\') buf[o++] = '\\';
        buf[o++] = *s;
      }
      buf[o++] = '"';
      buf[o] = '\0';
      break;
    }
    case CFG_FLOATS: {
      const cfg_floats *f = cfield(cfg, k);
      size_t o = (size_t)snprintf(buf, cap, "[");
      for (int i = 0; i < f->n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%.17g", i ? ", " : "", f->v[i]);
      if (o < cap) snprintf(buf + o, cap - o, "]");
      break;
    }
  }
}

static scl_err dump(const cfg_schema *schema, const void *cfg, int identity_only, char **text) {
  size_t cap = 256 * (size_t)schema->n_keys + 1024, len = 0;
  char *out = malloc(cap);
  SCL_CHECK(out, SCL_ERR_NOMEM, "config dump");
  out[0] = '\0';
  for (int i = 0; i < schema->n_keys; i++) {
    if (identity_only && schema->keys[i].no_identity) continue;
    char val[4200];
    value_text(&schema->keys[i], cfg, val, sizeof val);
    size_t need = strlen(schema->keys[i].name) + strlen(val) + 8;
    if (len + need >= cap) {
      cap = 2 * (len + need);
      char *grown = realloc(out, cap);
      if (!grown) {
        free(out);
        return SCL_ERROR(SCL_ERR_NOMEM, "config dump");
      }
      out = grown;
    }
    len += (size_t)snprintf(out + len, cap - len, "%s = %s;\n", schema->keys[i].name, val);
  }
  *text = out;
  return SCL_OK;
}

scl_err cfg_dump(const cfg_schema *schema, const void *cfg, char **text) {
  SCL_CALL(dump(schema, cfg, 0, text));
  return SCL_OK;
}

scl_err cfg_dump_identity(const cfg_schema *schema, const void *cfg, char **text) {
  SCL_CALL(dump(schema, cfg, 1, text));
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
