/* memory.c: aligned allocation and the bump arena.
 *
 * Activations and parameters are sized once at setup and carved from arenas, so the hot path
 * never calls malloc (STYLE.md 7). Allocation failures name the buffer and its size. */
#include "safecl/core.h"

#include <stdlib.h>
#include <string.h>

size_t scl_arena_round(size_t bytes) { return (bytes + SCL_ALIGN - 1) / SCL_ALIGN * SCL_ALIGN; }

scl_err scl_alloc(size_t bytes, const char *what, void **out) {
  *out = NULL;
  size_t rounded = scl_arena_round(bytes ? bytes : 1);
  SCL_CHECK(rounded >= bytes, SCL_ERR_NOMEM, "%s: size %zu overflows", what, bytes);
  void *p = aligned_alloc(SCL_ALIGN, rounded);
  SCL_CHECK(p, SCL_ERR_NOMEM, "cannot allocate %.1f MiB for %s", (double)bytes / 1048576.0, what);
  *out = p;
  return SCL_OK;
}

scl_err scl_calloc(size_t bytes, const char *what, void **out) {
  SCL_CALL(scl_alloc(bytes, what, out));
  memset(*out, 0, bytes);
  return SCL_OK;
}

void scl_free(void *p) { free(p); }

scl_err scl_arena_create(size_t capacity, const char *what, scl_arena **out) {
  *out = NULL;
  scl_arena *a = calloc(1, sizeof *a);
  SCL_CHECK(a, SCL_ERR_NOMEM, "cannot allocate arena header for %s", what);
  scl_err err = scl_alloc(capacity, what, (void **)&a->base);
  if (err) {
    free(a);
    return SCL_TRACE(err);
  }
  a->capacity = scl_arena_round(capacity ? capacity : 1);
  *out = a;
  return SCL_OK;
}

void scl_arena_destroy(scl_arena **arena) {
  if (!arena || !*arena) return;
  free((*arena)->base);
  free(*arena);
  *arena = NULL;
}

scl_err scl_arena_alloc(scl_arena *a, size_t bytes, void **out) {
  size_t need = scl_arena_round(bytes);
  SCL_CHECK(need >= bytes && need <= a->capacity - a->used, SCL_ERR_INTERNAL,
            "arena of %zu bytes exhausted: %zu used, %zu requested", a->capacity, a->used, bytes);
  *out = a->base + a->used;
  a->used += need;
  if (a->used > a->high_water) a->high_water = a->used;
  return SCL_OK;
}

void scl_arena_reset(scl_arena *a) { a->used = 0; }
