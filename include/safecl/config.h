/* config.h: libconfig files and key=value overrides parsed into typed structs.
 *
 * Each command describes its configuration as one table of keys (docs/conventions.md 15): dotted
 * name, type, bounds, default, help and, for strings, the allowed choices. The same table drives
 * parsing, validation, `--help` and the canonical effective-config dump that provenance records
 * and trial identity hash. Unknown keys are errors naming the file and line (or the override). */
#ifndef SAFECL_CONFIG_H
#define SAFECL_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "safecl/core.h"

typedef enum { CFG_INT, CFG_FLOAT, CFG_BOOL, CFG_STRING, CFG_FLOATS } cfg_type;

#define CFG_FLOATS_MAX 16
/* Storage of a CFG_FLOATS key. */
typedef struct cfg_floats {
  int n;
  double v[CFG_FLOATS_MAX];
} cfg_floats;

/* One key. Storage at `offset` in the config struct: int64_t (INT), double (FLOAT),
 * int (BOOL), char * (STRING; malloc'ed, freed by cfg_free), cfg_floats (FLOATS). */
typedef struct cfg_key {
  const char *name; /* dotted path, e.g. "data.resize" */
  cfg_type type;
  size_t offset;
  double min, max;     /* inclusive bounds for numbers and for each FLOATS element */
  const char *def;     /* default, written as it would be on the command line */
  const char *choices; /* STRING only: "a|b|c", or NULL for free text */
  const char *help;
  int no_identity; /* 1: the key does not change results (paths, threads, batch of a pure
                      inference pass), so trial identity leaves it out */
  /* STRING only, when `choices` is NULL: the choices computed from a registry (method.name's are
   * the registered methods), in the same "a|b|c" form. */
  const char *(*choices_of)(void);
} cfg_key;

/* The allowed values of a STRING key ("a|b|c"), or NULL for free text. */
const char *cfg_key_choices(const cfg_key *k);

/* A row of a key table for the config struct `st`, e.g.
 *   CFG_KEY(run_trial_cfg, "dataset.crop", CFG_INT, crop, 8, 8192, "224", NULL, "CenterCrop"),
 * and the same for a key that does not change results (no_identity = 1). */
#define CFG_KEY(st, name_, type_, field_, min_, max_, def_, choices_, help_) \
  { name_, type_, offsetof(st, field_), min_, max_, def_, choices_, help_, 0, NULL }
#define CFG_KEY_NO_IDENTITY(st, name_, type_, field_, min_, max_, def_, choices_, help_) \
  { name_, type_, offsetof(st, field_), min_, max_, def_, choices_, help_, 1, NULL }

/* A key that was renamed: files and overrides may still use old_name, which sets `name` and logs
 * a one-line deprecation warning. */
typedef struct cfg_renamed {
  const char *old_name, *name;
} cfg_renamed;

typedef struct cfg_schema {
  const char *command; /* for messages and --help */
  const cfg_key *keys;
  int n_keys;
  const cfg_renamed *renamed; /* may be NULL */
  int n_renamed;
} cfg_schema;

/* Fills `out` from defaults, then the file at `path` (may be NULL; @include is resolved
 * relative to the file's directory), then each "key=value" override in order; validates every
 * value against its bounds. On error nothing needs freeing beyond cfg_free(out). */
SCL_NODISCARD scl_err cfg_load(const cfg_schema *schema, const char *path, int n_overrides,
                               char *const *overrides, void *out);
/* The same with several files applied in order (later files override earlier ones), then the
 * overrides. n_paths may be 0. */
SCL_NODISCARD scl_err cfg_load_files(const cfg_schema *schema, const char *const *paths,
                                     int n_paths, int n_overrides, char *const *overrides,
                                     void *out);
/* Frees the strings of a struct filled by cfg_load. */
void cfg_free(const cfg_schema *schema, void *cfg);
/* The canonical effective config (keys in table order, one `name = value;` per line, strings
 * quoted): stable text for provenance and hashing. Caller frees with free(). */
SCL_NODISCARD scl_err cfg_dump(const cfg_schema *schema, const void *cfg, char **text);
/* The same text without the keys marked no_identity: what trial identity hashes. */
SCL_NODISCARD scl_err cfg_dump_identity(const cfg_schema *schema, const void *cfg, char **text);
/* The key table as help text. */
void cfg_print_help(const cfg_schema *schema, FILE *f);
/* Reads the libconfig file `path` into `lc` (set its include dir first) with every integer read
 * as the 64-bit value written, never wrapped (libconfig 1.5 wraps literals without an L); a
 * directory, an unreadable file or a syntax error is an error naming the file (and line). The
 * settings' source file is `path`, which must outlive `lc`. */
struct config_t;
SCL_NODISCARD scl_err cfg_read_libconfig(struct config_t *lc, const char *path);
/* True if `arg` looks like an override (contains '=' before any '/'). */
int cfg_is_override(const char *arg);

#endif /* SAFECL_CONFIG_H */
