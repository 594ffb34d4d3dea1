/* identity.c: trial identities without running the trials, for the planner and the sweep
 * (docs/architecture.md section 3): the config's identity text hashed with the weights file's
 * hash and both dataset manifests, the manifests cached per process by the keys that define a
 * dataset, so a sweep of many trials on one dataset lists it once. Seeds of one grid point
 * differ only in the seed line of the identity text, so run_plan_identities rewrites that line
 * instead of dumping the config per seed, and only after checking that the rewrite reproduces
 * the full identities of the first two seeds. Writing the identity into trial.h5 is
 * trial_output.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trial_phases.h"

/* A dataset's manifest, cached per process by the keys that define the dataset. */
#define MANIFEST_CACHE 32
static struct {
  char key[1200];
  char hex[33];
} manifest_cache[MANIFEST_CACHE];
static int manifests_cached;

static scl_err cached_manifest(const run_trial_cfg *cfg, const char *split, char hex[33]) {
  char key[1200];
  size_t len = strlen(split) + 1;
  snprintf(key, sizeof key, "%s|", split);
  run_plan_dataset_key(cfg, key + len, sizeof key - len);
  for (int i = 0; i < manifests_cached; i++)
    if (!strcmp(manifest_cache[i].key, key)) {
      memcpy(hex, manifest_cache[i].hex, 33);
      return SCL_OK;
    }
  data_dataset *ds = NULL;
  SCL_CALL(trial_open_split(cfg, split, &ds));
  scl_hash_hex(data_dataset_manifest_hash(ds), hex);
  data_dataset_close(&ds);
  int slot = manifests_cached < MANIFEST_CACHE ? manifests_cached++ : 0;
  snprintf(manifest_cache[slot].key, sizeof manifest_cache[slot].key, "%s", key);
  memcpy(manifest_cache[slot].hex, hex, 33);
  return SCL_OK;
}

scl_err run_trial_identity(const run_trial_cfg *cfg, char id[33]) {
  char weights[33], train[33], test[33];
  SCL_CALL(trial_weights_hash(cfg->weights, weights));
  SCL_CALL(cached_manifest(cfg, "train", train));
  SCL_CALL(cached_manifest(cfg, "test", test));
  SCL_CALL(trial_identity_of(cfg, weights, train, test, id));
  return SCL_OK;
}

/* hex = the identity of `text` with bytes [pre, post) replaced by seed's line, as
 * trial_identity_of hashes it: the canonical text, then the three input hashes. */
static scl_err identity_with_seed(const char *text, size_t pre, size_t post, int64_t seed,
                                  const char *weights, const char *train, const char *test,
                                  char hex[33]) {
  char line[64];
  int n = snprintf(line, sizeof line, "seed = %lld;\n", (long long)seed);
  scl_hasher *h = NULL;
  SCL_CALL(scl_hasher_create(&h));
  scl_hasher_update(h, text, pre);
  scl_hasher_update(h, line, (size_t)n);
  scl_hasher_update(h, text + post, strlen(text + post));
  scl_hasher_update(h, weights, 32);
  scl_hasher_update(h, train, 32);
  scl_hasher_update(h, test, 32);
  scl_hash_hex(scl_hasher_digest(h), hex);
  scl_hasher_destroy(&h);
  return SCL_OK;
}

/* The byte range [*pre, *post) of seed's line in a canonical text, or 0 if it has none. */
static int seed_line(const char *text, size_t *pre, size_t *post) {
  const char *p = !strncmp(text, "seed = ", 7) ? text : strstr(text, "\nseed = ");
  if (!p) return 0;
  p += p != text;
  const char *nl = strchr(p, '\n');
  if (!nl) return 0;
  *pre = (size_t)(p - text);
  *post = (size_t)(nl + 1 - text);
  return 1;
}

scl_err run_plan_identities(const run_trial_cfg *cfg, int n, const int64_t *seeds,
                            char (*ids)[33]) {
  char weights[33], train[33], test[33], check[33];
  SCL_CALL(trial_weights_hash(cfg->weights, weights));
  SCL_CALL(cached_manifest(cfg, "train", train));
  SCL_CALL(cached_manifest(cfg, "test", test));
  run_trial_cfg c = *cfg; /* a shallow copy, only read: the seed is its own */
  char *text = NULL;
  size_t pre = 0, post = 0;
  int fast = 0;
  scl_err err = SCL_OK;
  for (int k = 0; k < n && !err; k++) {
    c.seed = seeds[k];
    if (fast) {
      err = identity_with_seed(text, pre, post, seeds[k], weights, train, test, ids[k]);
      continue;
    }
    err = trial_identity_of(&c, weights, train, test, ids[k]);
    if (!err && k == 0 && n > 2) err = cfg_dump_identity(&run_trial_schema, &c, &text);
    if (err || k != 1 || !text || !seed_line(text, &pre, &post)) continue;
    /* the rewrite is used only if it gives both seeds' full identities */
    err = identity_with_seed(text, pre, post, seeds[0], weights, train, test, check);
    fast = !err && !strcmp(check, ids[0]);
    if (fast) err = identity_with_seed(text, pre, post, seeds[1], weights, train, test, check);
    fast = fast && !err && !strcmp(check, ids[1]);
  }
  free(text);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}
