/* report_scan.c: finding trials under the report's directories and reading each into a
 * report_trial.
 *
 * A directory is a trial directory if it holds trial.h5, failed.txt or ckpt.h5 itself (a
 * `safecl train` run.dir), and a run directory if it has trials/ (a sweep: every entry of
 * trials/ is one trial directory, read in name order). The status of a trial directory:
 *   finished    trial.h5 with status "finished" (a stale failed.txt beside it is ignored: the
 *               retry succeeded);
 *   failed      failed.txt, or a trial.h5 whose status is not "finished";
 *   unfinished  anything else (a checkpoint, or nothing yet).
 * failed.txt and trial.cfg hold `key = value;` config lines (the sweep coordinator writes the
 * identity config, src/orch/trial_notes.c; nested `config` text is read too) so that a trial
 * without results can still be placed in its table cell; failed.txt may add `error = "...";` and
 * free text, both taken as the message. Only trial.h5 is trusted for numbers, and it is checked
 * for its schema version first (1 to 3) and for damage: the h5 layer checks its attribute and
 * dataset checksums (h5.h), and a trial.h5 that fails them or that HDF5 cannot decode is
 * reported as a damaged, failed trial (its numbers unused) instead of stopping the report; a
 * finished trial's
 * /class_order and its config's dataset.order_seed and dataset.shuffle feed the class-order note.
 * index.h5 and the ledger are never read: the report must work on a directory whose coordinator
 * died. */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safecl/h5.h"
#include "report_internal.h"

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static scl_err dup_str(const char *s, char **out) {
  *out = strdup(s ? s : "");
  if (!*out) return SCL_ERROR(SCL_ERR_NOMEM, "report: string copy");
  return SCL_OK;
}

static scl_err join(const char *a, const char *b, char **out) {
  size_t n = strlen(a) + strlen(b) + 2;
  *out = malloc(n);
  if (!*out) return SCL_ERROR(SCL_ERR_NOMEM, "report: path");
  snprintf(*out, n, "%s/%s", a, b);
  return SCL_OK;
}

/* A whole small text file, NUL-terminated; malloc'ed. */
static scl_err read_text(const char *path, char **out) {
  *out = NULL;
  FILE *f = NULL;
  SCL_CALL(scl_fopen_regular(path, "report input", &f));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1 || cap >= ((size_t)1 << 24)) break;
    char *grown = realloc(buf, cap * 2);
    if (!grown) free(buf);
    buf = grown;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  SCL_CHECK(buf, SCL_ERR_NOMEM, "report: reading %s", path);
  if (bad) {
    free(buf);
    return SCL_ERROR(SCL_ERR_IO, "report: read error on %s", path);
  }
  buf[n] = '\0';
  *out = buf;
  return SCL_OK;
}

/* A predictor name as the trainer writes them (ranpac, safe_fused): 1 to 63 letters, digits,
 * '_', '-' or '.', and not "." or "..". Anything else would make "predictors/<name>" a path into
 * another object (a nested path, the group itself) or come from damaged bytes. */
static int plain_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63 || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("_-.", s[i])) return 0;
  return 1;
}

/* Fills t->pred from /predictors, the primary first, the others in name order. The primary
 * must be a plain name that is one of the group's links, so every slot written is one of the
 * links listed. */
static scl_err read_predictor_names(h5_file *f, const char *primary, report_trial *t) {
  char obj[320], **names = NULL;
  int exists = 0;
  int64_t n = 0;
  scl_err err = SCL_OK;
  SCL_CHECK(plain_name(primary), SCL_ERR_FORMAT,
            "%s: primary_predictor '%.80s' is not a plain predictor name (1 to 63 letters, "
            "digits, '_', '-', '.'): the file is damaged",
            h5_file_path(f), primary);
  snprintf(obj, sizeof obj, "predictors/%s", primary);
  SCL_CALL(h5_exists(f, obj, &exists));
  SCL_CHECK(exists, SCL_ERR_FORMAT, "%s: primary_predictor '%s' has no /%s", h5_file_path(f),
            primary, obj);
  SCL_CALL(h5_list_links(f, "predictors", 64, &names, &n));
  SCL_CHECK_GOTO(err, done, n >= 1, SCL_ERR_FORMAT, "%s: empty /predictors group", h5_file_path(f));
  SCL_CHECK_GOTO(err, done, t->pred = calloc((size_t)n, sizeof *t->pred), SCL_ERR_NOMEM,
                 "report: predictors");
  t->n_pred = 1; /* slot 0 is kept for the primary */
  int found = 0;
  for (int64_t i = 0; i < n; i++) {
    SCL_CHECK_GOTO(err, done, strlen(names[i]) < 256, SCL_ERR_FORMAT,
                   "%s: unreadable predictor name", h5_file_path(f));
    const int is_primary = !found && strcmp(names[i], primary) == 0;
    SCL_CHECK_GOTO(err, done, is_primary || t->n_pred < (int)n, SCL_ERR_FORMAT,
                   "%s: primary_predictor '%s' is not one of the links of /predictors",
                   h5_file_path(f), primary);
    found |= is_primary;
    SCL_CALL_GOTO(err, dup_str(names[i], &t->pred[is_primary ? 0 : t->n_pred++].name), done);
  }
done:
  h5_strings_free(names, n);
  return err;
}

static scl_err read_predictor(h5_file *f, int n_sessions, report_pred *p) {
  char obj[320];
  snprintf(obj, sizeof obj, "predictors/%s", p->name);
  for (int m = 0; m < REPORT_N_METRICS; m++)
    SCL_CALL(h5_attr_read_f64(f, obj, report_metric_name(m), &p->metric[m]));
  SCL_CALL(
      scl_alloc((size_t)n_sessions * sizeof *p->acc, "report: accuracy curve", (void **)&p->acc));
  snprintf(obj, sizeof obj, "predictors/%s/acc", p->name);
  SCL_CALL(h5_read_f64_1d(f, obj, p->acc, n_sessions));
  return SCL_OK;
}

/* SAFE's released-code figure (/diagnostics/authors_protocol_acc, written by run/trial_output.c)
 * as one more predictor named "authors_protocol", which report_names.c makes a diagnostic: its
 * final and average accuracy are the file's attributes; forgetting is not defined for it. */
static scl_err read_authors_protocol(h5_file *f, int n_sessions, report_trial *t) {
  int exists = 0;
  SCL_CALL(h5_exists(f, "diagnostics/authors_protocol_acc", &exists));
  if (!exists) return SCL_OK;
  report_pred *grown = realloc(t->pred, (size_t)(t->n_pred + 1) * sizeof *t->pred);
  SCL_CHECK(grown, SCL_ERR_NOMEM, "report: predictors");
  t->pred = grown;
  report_pred *p = &t->pred[t->n_pred++];
  memset(p, 0, sizeof *p);
  SCL_CALL(dup_str("authors_protocol", &p->name));
  p->metric[REPORT_FORGET] = NAN;
  SCL_CALL(h5_attr_read_f64(f, "diagnostics", "authors_protocol_final", &p->metric[REPORT_FINAL]));
  SCL_CALL(h5_attr_read_f64(f, "diagnostics", "authors_protocol_avg", &p->metric[REPORT_AVG]));
  SCL_CALL(
      scl_alloc((size_t)n_sessions * sizeof *p->acc, "report: accuracy curve", (void **)&p->acc));
  SCL_CALL(h5_read_f64_1d(f, "diagnostics/authors_protocol_acc", p->acc, n_sessions));
  return SCL_OK;
}

/* How the config sets the class order (docs/methods.md a.2): t->order_seed is the pinned seed
 * (-1 when the order follows the trial seed, as it does when the key is absent) and t->shuffled
 * is 0 for an unshuffled or domain-incremental benchmark, whose order is the label order. */
static scl_err read_order_config(const char *path, const char *config, const char *protocol,
                                 report_trial *t) {
  char *seed = report_config_value(config, "dataset.order_seed");
  char *shuffle = report_config_value(config, "dataset.shuffle");
  char *end = NULL;
  t->order_seed = seed ? strtoll(seed, &end, 10) : -1;
  int bad = seed && (end == seed || *end != '\0');
  t->shuffled = !(shuffle && !strcmp(shuffle, "false")) && strcmp(protocol, "domain-incremental");
  free(seed);
  free(shuffle);
  SCL_CHECK(!bad, SCL_ERR_FORMAT, "%s: config: dataset.order_seed is not an integer", path);
  return SCL_OK;
}

/* /class_order of a finished trial; a file without it leaves t->order NULL. */
static scl_err read_class_order(h5_file *f, report_trial *t) {
  int exists = 0, ndim = 0;
  int64_t dims[H5_MAX_DIMS] = {0};
  SCL_CALL(h5_exists(f, "class_order", &exists));
  if (!exists) return SCL_OK;
  SCL_CALL(h5_dataset_shape(f, "class_order", &ndim, dims));
  SCL_CHECK(ndim == 1 && dims[0] >= 1 && dims[0] <= 10000000, SCL_ERR_FORMAT,
            "%s: /class_order is not a list of labels", h5_file_path(f));
  t->order = malloc((size_t)dims[0] * sizeof *t->order);
  SCL_CHECK(t->order, SCL_ERR_NOMEM, "report: class order");
  SCL_CALL(h5_read_i64_1d(f, "class_order", t->order, dims[0]));
  t->n_order = dims[0];
  return SCL_OK;
}

/* backbone_random, or in files older than it a weights hash of "random". */
static scl_err read_random_weights(h5_file *f, report_trial *t) {
  int exists = 0;
  int64_t v = 0;
  char *hash = NULL;
  SCL_CALL(h5_attr_exists(f, NULL, "backbone_random", &exists));
  if (exists) {
    SCL_CALL(h5_attr_read_i64(f, NULL, "backbone_random", &v));
    t->random_weights = v != 0;
    return SCL_OK;
  }
  SCL_CALL(h5_attr_exists(f, NULL, "backbone_weights_xxh3", &exists));
  if (!exists) return SCL_OK;
  SCL_CALL(h5_attr_read_str(f, NULL, "backbone_weights_xxh3", &hash));
  t->random_weights = !strcmp(hash, "random");
  free(hash);
  return SCL_OK;
}

static scl_err read_trial_attrs(h5_file *f, report_trial *t, char **status) {
  char *kind = NULL, *config = NULL, *protocol = NULL;
  int64_t v = 0;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "kind", &kind), done);
  SCL_CHECK_GOTO(err, done, !strcmp(kind, "trial"), SCL_ERR_FORMAT,
                 "%s: kind = \"%s\", not a trial results file", h5_file_path(f), kind);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "status", status), done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "trial_id", &t->id), done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "dataset", &t->dataset), done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "method", &t->method), done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "method_category", &t->category), done);
  /* identity_config: flat `key = value;` lines whatever the version (`config` is nested
   * libconfig since the config could be read back); files older than it have a flat config */
  int flat = 0;
  SCL_CALL_GOTO(err, h5_attr_exists(f, NULL, "identity_config", &flat), done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, flat ? "identity_config" : "config", &config), done);
  SCL_CALL_GOTO(err, report_config_point(config, &t->point), done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "protocol", &protocol), done);
  SCL_CALL_GOTO(err, read_order_config(h5_file_path(f), config, protocol, t), done);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "seed", &t->seed), done);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "n_sessions", &v), done);
  SCL_CHECK_GOTO(err, done, v >= 1 && v <= 100000, SCL_ERR_FORMAT, "%s: n_sessions = %lld",
                 h5_file_path(f), (long long)v);
  t->n_sessions = (int)v;
  SCL_CALL_GOTO(err, h5_attr_read_f64(f, NULL, "val_acc", &t->val_acc), done);
  SCL_CALL_GOTO(err, read_random_weights(f, t), done);
  t->placed = 1;
done:
  free(kind);
  free(config);
  free(protocol);
  return err;
}

/* Reads DIR/trial.h5 into t; a status other than "finished" makes t failed. */
static scl_err read_trial_h5(const char *path, report_trial *t) {
  h5_file *f = NULL;
  char *status = NULL, *primary = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, h5_file_open_read(path, &f), done);
  SCL_CALL_GOTO(err,
                h5_check_schema_range(f, REPORT_TRIAL_SCHEMA_OLDEST, REPORT_TRIAL_SCHEMA_VERSION,
                                      "trial results"),
                done);
  SCL_CALL_GOTO(err, read_trial_attrs(f, t, &status), done);
  if (strcmp(status, "finished")) {
    t->status = REPORT_FAILED;
    size_t n = strlen(status) + 32;
    t->message = malloc(n);
    SCL_CHECK_GOTO(err, done, t->message, SCL_ERR_NOMEM, "report: message");
    snprintf(t->message, n, "trial.h5 status \"%s\"", status);
    goto done;
  }
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "primary_predictor", &primary), done);
  SCL_CALL_GOTO(err, read_predictor_names(f, primary, t), done);
  for (int p = 0; p < t->n_pred; p++)
    SCL_CALL_GOTO(err, read_predictor(f, t->n_sessions, &t->pred[p]), done);
  SCL_CALL_GOTO(err, read_authors_protocol(f, t->n_sessions, t), done);
  SCL_CALL_GOTO(err, read_class_order(f, t), done);
  t->status = REPORT_FINISHED;
done:
  free(status);
  free(primary);
  if (f) {
    scl_err close_err = h5_file_close(&f);
    if (!err) err = close_err;
  }
  return err;
}

/* Places a trial without results from `key = value;` config text (failed.txt, trial.cfg). */
static scl_err place_from_config(const char *text, report_trial *t) {
  char *seed = report_config_value(text, "seed");
  t->dataset = report_config_value(text, "dataset.name");
  t->method = report_config_value(text, "method.name");
  char *end = NULL;
  if (seed && t->dataset && t->method) {
    t->seed = strtoll(seed, &end, 10);
    t->placed = end != seed && *end == '\0';
  }
  free(seed);
  if (t->method) SCL_CALL(dup_str(report_method_default_category(t->method), &t->category));
  if (t->placed) SCL_CALL(report_config_point(text, &t->point));
  return SCL_OK;
}

/* failed.txt: the `error` value and every line that is not `key = value;` form the message. */
static scl_err read_failed_txt(const char *path, report_trial *t) {
  char *text = NULL;
  SCL_CALL(read_text(path, &text));
  scl_err err = place_from_config(text, t);
  char *msg = report_config_value(text, "error");
  size_t cap = strlen(text) + (msg ? strlen(msg) : 0) + 2, n = 0;
  t->message = err ? NULL : calloc(cap, 1);
  if (!err && !t->message) err = SCL_ERROR(SCL_ERR_NOMEM, "report: message");
  if (!err && msg) n += (size_t)snprintf(t->message, cap, "%s", msg);
  for (char *line = text; !err && *line;) {
    char *nl = strchr(line, '\n'), *eq = strchr(line, '=');
    size_t len = nl ? (size_t)(nl - line) : strlen(line);
    int config_line = eq && eq < line + len && memchr(line, ';', len);
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) len--;
    if (!config_line && len)
      n += (size_t)snprintf(t->message + n, cap - n, "%s%.*s", n ? " " : "", (int)len, line);
    line = nl ? nl + 1 : line + strlen(line);
  }
  free(msg);
  free(text);
  return err;
}

static scl_err read_unfinished(const char *dir, report_trial *t) {
  char *cfg = NULL, *ckpt = NULL, *text = NULL;
  scl_err err = join(dir, "trial.cfg", &cfg);
  if (!err && is_file(cfg)) err = read_text(cfg, &text);
  if (!err && text) err = place_from_config(text, t);
  if (!err) err = join(dir, "ckpt.h5", &ckpt);
  int64_t done = -1;
  if (!err && is_file(ckpt)) { /* best effort: the file may be mid-write */
    h5_file *f = NULL;
    int64_t k = 0;
    done = 0;
    if (h5_file_open_read(ckpt, &f) == SCL_OK &&
        h5_attr_read_i64(f, NULL, "sessions_done", &k) == SCL_OK)
      done = k;
    scl_err close_err = h5_file_close(&f);
    (void)close_err;
    scl_error_take(NULL, 0); /* an unreadable checkpoint counts as no sessions done */
  }
  char msg[96];
  if (done > 0)
    snprintf(msg, sizeof msg, "checkpoint after session %lld", (long long)done);
  else
    snprintf(msg, sizeof msg, done == 0 ? "checkpoint present" : "no results yet");
  if (!err) err = dup_str(msg, &t->message);
  free(cfg);
  free(ckpt);
  free(text);
  return err;
}

/* ---------------------------------------------------------------------------------------- */
/* Config text: `key = value;` lines, flat with dotted keys (identity_config, older config) or  */
/* nested in `group = {` ... `};` as cfg_dump writes it (config/config_dump.c).               */

/* Keys that do not make a different hyperparameter point: the seed, and the keys that
 * run/trial_config.c marks no_identity (KX: paths, threads, batch of a pure inference pass,
 * checkpoint interval), copied here; `error` is failed.txt's message, not a config key. */
static const char *const non_point_keys[] = {"seed",
                                             "run.dir",
                                             "threads",
                                             "eval.batch",
                                             "dataset.root",
                                             "train.ckpt_every",
                                             "train.ckpt_minutes",
                                             "error"};

/* Splits one line into key [k, k+klen) and value [v, v+vlen); 0 if it is not `key = value;`. */
static int split_line(const char *line, size_t len, const char **k, size_t *klen, const char **v,
                      size_t *vlen) {
  const char *end = line + len, *p = line;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  *k = p;
  while (p < end && *p != ' ' && *p != '\t' && *p != '=') p++;
  *klen = (size_t)(p - *k);
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  if (!*klen || p >= end || *p != '=') return 0;
  p++;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  const char *semi = end;
  while (semi > p && semi[-1] != ';') semi--;
  if (semi == p) return 0;
  semi--; /* at the last ';' */
  while (semi > p && (semi[-1] == ' ' || semi[-1] == '\t')) semi--;
  *v = p;
  *vlen = (size_t)(semi - p);
  return 1;
}

/* A line that opens (`name = {`) or closes (`};`) a group updates prefix ("a.b." inside b of a)
 * and returns 1; any other line returns 0. */
static int group_line(const char *line, size_t len, char *prefix, size_t cap) {
  const char *p = line, *end = line + len;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  if (p < end && *p == '}') {
    size_t n = strlen(prefix);
    if (n) prefix[n - 1] = '\0';
    char *dot = strrchr(prefix, '.');
    if (dot)
      dot[1] = '\0';
    else
      prefix[0] = '\0';
    return 1;
  }
  const char *name = p;
  while (p < end && *p != ' ' && *p != '\t' && *p != '=' && *p != ':') p++;
  size_t nlen = (size_t)(p - name);
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  if (!nlen || p >= end || (*p != '=' && *p != ':')) return 0;
  for (p++; p < end && (*p == ' ' || *p == '\t'); p++) {
  }
  if (p >= end || *p != '{') return 0;
  for (p++; p < end && (*p == ' ' || *p == '\t' || *p == '\r'); p++) {
  }
  if (p != end) return 0;
  size_t n = strlen(prefix);
  snprintf(prefix + n, cap - n, "%.*s.", (int)nlen, name);
  return 1;
}

/* The full name of key [k, k+klen) inside the groups of prefix. */
static void full_key(const char *prefix, const char *k, size_t klen, char *out, size_t cap) {
  snprintf(out, cap, "%s%.*s", prefix, (int)klen, k);
}

char *report_config_value(const char *text, const char *key) {
  char prefix[256] = "", name[512];
  for (const char *line = text; line && *line;) {
    const char *nl = strchr(line, '\n'), *k, *v;
    size_t len = nl ? (size_t)(nl - line) : strlen(line), klen, vlen;
    if (group_line(line, len, prefix, sizeof prefix)) {
      line = nl ? nl + 1 : NULL;
      continue;
    }
    int is_kv = split_line(line, len, &k, &klen, &v, &vlen);
    if (is_kv) full_key(prefix, k, klen, name, sizeof name);
    if (is_kv && !strcmp(name, key)) {
      char *out = malloc(vlen + 1);
      if (!out) return NULL;
      size_t o = 0;
      if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
        for (size_t i = 1; i + 1 < vlen; i++) {
          if (v[i] == '\\' && i + 2 < vlen) i++;
          out[o++] = v[i];
        }
      } else {
        memcpy(out, v, vlen);
        o = vlen;
      }
      out[o] = '\0';
      return out;
    }
    line = nl ? nl + 1 : NULL;
  }
  return NULL;
}

scl_err report_config_point(const char *text, char **out) {
  size_t cap = strlen(text) + 1, o = 0;
  char *buf = malloc(cap);
  SCL_CHECK(buf, SCL_ERR_NOMEM, "report: config point");
  char prefix[256] = "", name[512];
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n'), *k, *v;
    size_t len = nl ? (size_t)(nl - line) : strlen(line), klen, vlen;
    int keep = !group_line(line, len, prefix, sizeof prefix) &&
               split_line(line, len, &k, &klen, &v, &vlen);
    if (keep) full_key(prefix, k, klen, name, sizeof name);
    for (size_t i = 0; keep && i < sizeof non_point_keys / sizeof non_point_keys[0]; i++)
      if (!strcmp(name, non_point_keys[i])) keep = 0;
    if (keep) {
      if (o + strlen(name) + vlen + 6 > cap) { /* nested names grow longer than their lines */
        cap = 2 * (o + strlen(name) + vlen + 6);
        char *grown = realloc(buf, cap);
        if (!grown) {
          free(buf);
          return SCL_ERROR(SCL_ERR_NOMEM, "report: config point");
        }
        buf = grown;
      }
      o += (size_t)snprintf(buf + o, cap - o, "%s%s = %.*s;", o ? "\n" : "", name, (int)vlen, v);
    }
    line = nl ? nl + 1 : line + len;
  }
  buf[o] = '\0';
  *out = buf;
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Directories                                                                               */

/* Forgets what a failed read of trial.h5 left in t (the directory and its identity stay). */
static void forget_results(report_trial *t) {
  free(t->id), free(t->message), free(t->dataset), free(t->method), free(t->category);
  free(t->point);
  for (int p = 0; p < t->n_pred; p++) free(t->pred[p].name), scl_free(t->pred[p].acc);
  free(t->pred), free(t->order);
  t->id = t->message = t->dataset = t->method = t->category = t->point = NULL;
  t->pred = NULL;
  t->order = NULL;
  t->n_pred = 0;
  t->n_order = 0;
  t->placed = 0;
  t->val_acc = NAN;
}

/* A trial.h5 whose checksums do not match or whose bytes HDF5 cannot decode is damaged: none of
 * its numbers are used. The trial is
 * listed as failed with the reason, placed from its trial.cfg when there is one, and the report
 * goes on. */
static scl_err damaged_trial(const char *dir, const char *h5, report_trial *t) {
  char why[SCL_ERROR_MESSAGE_MAX], *cfg = NULL, *text = NULL;
  scl_error_take(why, sizeof why);
  forget_results(t);
  SCL_WARN("report: %s is damaged, its numbers are not used: %s", h5, why);
  t->status = REPORT_FAILED;
  size_t n = strlen(why) + 64;
  t->message = malloc(n);
  SCL_CHECK(t->message, SCL_ERR_NOMEM, "report: message");
  snprintf(t->message, n, "damaged trial.h5, not used: %s", why);
  scl_err err = join(dir, "trial.cfg", &cfg);
  if (!err && is_file(cfg)) err = read_text(cfg, &text);
  if (!err && text) err = place_from_config(text, t);
  free(cfg);
  free(text);
  return err;
}

static scl_err read_trial_dir(const char *dir, report_trial *t) {
  char *h5 = NULL, *failed = NULL;
  scl_err err = join(dir, "trial.h5", &h5);
  if (!err) err = join(dir, "failed.txt", &failed);
  if (!err && is_file(h5)) {
    err = read_trial_h5(h5, t);
    /* Damage, not a refusal of an intact file (another schema, not a trial): HDF5 cannot decode
     * the bytes, or a checksum does not match (h5.h's message). */
    if (err == SCL_ERR_HDF5 ||
        (err == SCL_ERR_FORMAT && strstr(scl_error_message(), "checksum mismatch")))
      err = damaged_trial(dir, h5, t);
  } else if (!err && is_file(failed)) {
    t->status = REPORT_FAILED;
    err = read_failed_txt(failed, t);
  } else if (!err) {
    t->status = REPORT_UNFINISHED;
    err = read_unfinished(dir, t);
  }
  if (!err && !t->id) {
    const char *slash = strrchr(dir, '/');
    err = dup_str(slash ? slash + 1 : dir, &t->id);
  }
  free(h5);
  free(failed);
  return err;
}

static scl_err add_trial(report_data *d, const char *dir) {
  struct stat st;
  SCL_CHECK(stat(dir, &st) == 0, SCL_ERR_IO, "report: cannot stat %s", dir);
  for (int i = 0; i < d->n_trials; i++)
    if (d->trials[i].dev == (uint64_t)st.st_dev && d->trials[i].ino == (uint64_t)st.st_ino) {
      d->n_dup++;
      return SCL_OK;
    }
  if (d->n_trials == d->cap_trials) {
    int cap = d->cap_trials ? 2 * d->cap_trials : 64;
    report_trial *grown = realloc(d->trials, (size_t)cap * sizeof *grown);
    SCL_CHECK(grown, SCL_ERR_NOMEM, "report: %d trials", cap);
    d->trials = grown;
    d->cap_trials = cap;
  }
  report_trial *t = &d->trials[d->n_trials++];
  memset(t, 0, sizeof *t);
  t->dup_of = -1;
  t->run = d->n_runs;
  t->val_acc = NAN;
  SCL_CALL(dup_str(dir, &t->dir));
  t->dev = (uint64_t)st.st_dev;
  t->ino = (uint64_t)st.st_ino;
  SCL_CALL(read_trial_dir(dir, t));
  return SCL_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every directory under trials/, in name order. */
static scl_err scan_trials(report_data *d, const char *trials) {
  DIR *dh = opendir(trials);
  SCL_CHECK(dh, SCL_ERR_IO, "report: cannot list %s", trials);
  char **names = NULL;
  int n = 0, cap = 0;
  scl_err err = SCL_OK;
  for (struct dirent *e; !err && (e = readdir(dh));) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **grown = realloc(names, (size_t)cap * sizeof *grown);
      SCL_CHECK_GOTO(err, done, grown, SCL_ERR_NOMEM, "report: listing %s", trials);
      names = grown;
    }
    err = join(trials, e->d_name, &names[n]);
    if (!err) n++;
  }
  if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
  for (int i = 0; i < n && !err; i++)
    if (is_dir(names[i])) SCL_CALL_GOTO(err, add_trial(d, names[i]), done);
done:
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  closedir(dh);
  return err;
}

scl_err report_scan_dir(report_data *d, const char *arg) {
  char *dir = NULL, *trials = NULL, *probe = NULL;
  SCL_CALL(dup_str(arg, &dir));
  for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) dir[n - 1] = '\0';
  scl_err err = SCL_OK;
  SCL_CHECK_GOTO(err, done, is_dir(dir), SCL_ERR_ARG, "report: %s is not a directory", dir);
  int own = 0;
  static const char *const own_files[] = {"trial.h5", "failed.txt", "ckpt.h5"};
  for (int i = 0; i < 3 && !err; i++) {
    free(probe);
    probe = NULL;
    SCL_CALL_GOTO(err, join(dir, own_files[i], &probe), done);
    own |= is_file(probe);
  }
  SCL_CALL_GOTO(err, join(dir, "trials", &trials), done);
  int run = is_dir(trials);
  if (!own && !run)
    SCL_ERROR_GOTO(err, done, SCL_ERR_ARG,
                   "report: %s holds neither trial.h5 nor trials/: not a safecl run directory "
                   "(a sweep's RUN_DIR) or trial directory (a `safecl train` run.dir)",
                   dir);
  if (own) SCL_CALL_GOTO(err, add_trial(d, dir), done);
  if (run) SCL_CALL_GOTO(err, scan_trials(d, trials), done);
  d->n_runs++;
done:
  free(dir);
  free(trials);
  free(probe);
  return err;
}
