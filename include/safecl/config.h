/* config.h: libconfig files and key=value overrides parsed into typed structs.
 *
 * Each command describes its configuration as one table of keys (docs/conventions.md 15): dotted
 * name, type, bounds, default, help and, for strings, the allowed choices. The same table drives
 * parsing, validation, `--help`, the effective config printed as libconfig (--print-config, the
 * `config` that results files record, readable back as a config file) and the flat text that trial
 * identity hashes. Unknown keys are errors naming the file and line (or the override) and the
 * closest known keys. */
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
  /* 1: a key added after trials were named; the identity text holds it only when its value
     differs from the default, so a trial that leaves it at the default keeps its earlier id */
  int added;
} cfg_key;

/* The allowed values of a STRING key ("a|b|c"), or NULL for free text. */
const char *cfg_key_choices(const cfg_key *k);

/* A row of a key table for the config struct `st`, e.g.
 *   CFG_KEY(run_trial_cfg, "dataset.crop", CFG_INT, crop, 8, 8192, "224", NULL, "CenterCrop"),
 * and the same for a key that does not change results (no_identity = 1). */
#define CFG_KEY(st, name_, type_, field_, min_, max_, def_, choices_, help_) \
  { name_, type_, offsetof(st, field_), min_, max_, def_, choices_, help_, 0, NULL, 0 }
#define CFG_KEY_NO_IDENTITY(st, name_, type_, field_, min_, max_, def_, choices_, help_) \
  { name_, type_, offsetof(st, field_), min_, max_, def_, choices_, help_, 1, NULL, 0 }
#define CFG_KEY_ADDED(st, name_, type_, field_, min_, max_, def_, choices_, help_) \
  { name_, type_, offsetof(st, field_), min_, max_, def_, choices_, help_, 0, NULL, 1 }

/* A key that was renamed: files and overrides may still use old_name, which sets `name` and logs
 * a one-line deprecation warning. With `refused` set the old name is an error naming `name`
 * instead (its meaning changed, so silently mapping it would change a run); `note` (may be NULL)
 * is added to the warning or the error. */
typedef struct cfg_renamed {
  const char *old_name, *name;
  int refused;
  const char *note;
} cfg_renamed;

typedef struct cfg_schema {
  const char *command; /* for messages and --help */
  const cfg_key *keys;
  int n_keys;
  const cfg_renamed *renamed; /* may be NULL */
  int n_renamed;
} cfg_schema;

/* Fills `out` from defaults, then applies `args` left to right: each is a config file or a
 * "key=value" override (cfg_is_override), and a later argument wins over an earlier one for the
 * keys it sets; a file after an override therefore sets that key again, which logs a warning
 * naming the key, the file and the override. Validates every value against its bounds. */
SCL_NODISCARD scl_err cfg_load_args(const cfg_schema *schema, int n_args, char *const *args,
                                    void *out);
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
/* The effective config as a libconfig file that cfg_load reads back to the same values: dotted
 * names become nested groups (in the table's order of first appearance), one setting per line;
 * floats in the shortest decimal that parses back to the same double (cfg_format_double),
 * integers outside 32 bits with libconfig's L suffix, strings quoted with escapes. What
 * --print-config prints and results files record. Caller frees with free(). */
SCL_NODISCARD scl_err cfg_dump(const cfg_schema *schema, const void *cfg, char **text);
/* What trial identity hashes: one `name = value;` line per key in table order (dotted names,
 * numbers with %.17g), without the keys marked no_identity and without `added` keys at their
 * default. The format is frozen, since changing it would rename every trial. */
SCL_NODISCARD scl_err cfg_dump_identity(const cfg_schema *schema, const void *cfg, char **text);
/* The shortest of %.15g, %.16g and %.17g that parses back to v exactly, with ".0" added when the
 * text would read as an integer. buf holds at least 32 bytes. */
void cfg_format_double(double v, char *buf, size_t cap);
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
