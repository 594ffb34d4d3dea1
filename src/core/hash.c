/* hash.c: XXH3-128 content hashes (trial identity, manifests, weight files) and the code
 * version string for provenance. xxHash is used from Debian's libxxhash, not vendored. */
#include "safecl/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct scl_hasher {
  XXH3_state_t *state;
};

scl_hash scl_hash_bytes(const void *data, size_t len) {
  XXH128_hash_t h = XXH3_128bits(data, len);
  return (scl_hash){h.high64, h.low64};
}

scl_err scl_hasher_create(scl_hasher **out) {
  scl_hasher *h = calloc(1, sizeof *h);
  if (!h || !(h->state = XXH3_createState())) {
    free(h);
    return SCL_ERROR(SCL_ERR_NOMEM, "cannot allocate hash state");
  }
  XXH3_128bits_reset(h->state);
  *out = h;
  return SCL_OK;
}

void scl_hasher_update(scl_hasher *h, const void *data, size_t len) {
  XXH3_128bits_update(h->state, data, len);
}

scl_hash scl_hasher_digest(const scl_hasher *h) {
  XXH128_hash_t d = XXH3_128bits_digest(h->state);
  return (scl_hash){d.high64, d.low64};
}

void scl_hasher_destroy(scl_hasher **h) {
  if (!h || !*h) return;
  XXH3_freeState((*h)->state);
  free(*h);
  *h = NULL;
}

void scl_hash_hex(scl_hash h, char out[33]) {
  snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.hi, (unsigned long long)h.lo);
}

scl_err scl_hash_file(const char *path, const char *what, scl_hash *out) {
  FILE *f = NULL;
  SCL_CALL(scl_fopen_regular(path, what, &f));
  scl_hasher *h = NULL;
  scl_err err = scl_hasher_create(&h);
  if (err) {
    fclose(f);
    return SCL_TRACE(err);
  }
  static _Thread_local char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) scl_hasher_update(h, buf, n);
  int failed = ferror(f);
  fclose(f);
  *out = scl_hasher_digest(h);
  scl_hasher_destroy(&h);
  SCL_CHECK(!failed, SCL_ERR_IO, "%s %s: read error while hashing", what, path);
  return SCL_OK;
}

#ifndef SAFECL_GIT
#define SAFECL_GIT "unknown"
#endif

const char *scl_version(void) { return SAFECL_VERSION " (git " SAFECL_GIT ")"; }
