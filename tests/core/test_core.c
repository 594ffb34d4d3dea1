/* test_core.c: core module checks: class orders against NumPy's legacy permutation (docs/methods.md
 * a.2 test vectors), Philox4x32-10 known-answer vectors (Random123 kat_vectors), RNG stream
 * independence from call order, error traceback, SCL_CHECK and scl_error_take, aligned
 * allocation and rounding, hashing. Exits non-zero on any
 * failure. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/class_orders.h"
#include "safecl/core.h"

#include "../common/scl_check.h"

static void test_class_orders(void) {
  const int64_t *want[3] = {order_100, order_200, order_300};
  const int64_t ns[3] = {100, 200, 300};
  for (int k = 0; k < 3; k++) {
    int64_t got[300];
    CHECK(scl_np_permutation(1993, ns[k], got) == SCL_OK, "permutation failed");
    int bad = 0;
    for (int64_t i = 0; i < ns[k]; i++) bad += got[i] != want[k][i];
    CHECK(bad == 0, "n=%lld: %d positions differ from docs/methods.md a.2", (long long)ns[k], bad);
    printf("class order n=%lld: %s\n", (long long)ns[k], bad ? "MISMATCH" : "identical");
  }
}

static void test_philox(void) {
  /* Random123 kat_vectors, philox4x32 with 10 rounds. */
  const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                              {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                              {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}};
  const uint32_t key[3][2] = {{0, 0}, {0xffffffffu, 0xffffffffu}, {0xa4093822u, 0x299f31d0u}};
  const uint32_t want[3][4] = {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
                               {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
                               {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}};
  for (int k = 0; k < 3; k++) {
    uint32_t out[4];
    scl_philox4x32_10(ctr[k], key[k], out);
    CHECK(memcmp(out, want[k], sizeof out) == 0, "philox vector %d: got %08x %08x %08x %08x", k,
          out[0], out[1], out[2], out[3]);
  }
  /* A stream is a pure function of its identity: interleaving other streams changes nothing. */
  scl_rng a, b, c;
  scl_rng_init(&a, 42, SCL_STREAM_AUGMENT, 3, 17);
  double first[9];
  for (int i = 0; i < 9; i++) first[i] = scl_rng_uniform(&a);
  scl_rng_init(&b, 42, SCL_STREAM_AUGMENT, 3, 17);
  scl_rng_init(&c, 42, SCL_STREAM_AUGMENT, 3, 18);
  for (int i = 0; i < 9; i++) {
    (void)scl_rng_u32(&c);
    CHECK(scl_rng_uniform(&b) == first[i], "stream not reproducible at draw %d", i);
  }
  /* Moments of the normal and uniform draws. */
  double s = 0, s2 = 0, u = 0;
  scl_rng_init(&a, 7, SCL_STREAM_INIT, 0, 0);
  const int n = 200000;
  for (int i = 0; i < n; i++) {
    double z = scl_rng_normal(&a);
    s += z;
    s2 += z * z;
    u += scl_rng_uniformf(&a);
  }
  CHECK(fabs(s / n) < 0.01 && fabs(s2 / n - 1.0) < 0.02, "normal moments %g %g", s / n, s2 / n);
  CHECK(fabs(u / n - 0.5) < 0.005, "uniform mean %g", u / n);
}

static scl_err inner(void) { return SCL_ERROR(SCL_ERR_FORMAT, "weights.safetensors: tensor x"); }
static scl_err outer(void) {
  SCL_CALL(inner());
  return SCL_OK;
}

static scl_err checked(int n) {
  SCL_CHECK(n >= 0, SCL_ERR_ARG, "n = %d is negative", n);
  return SCL_OK;
}
static scl_err checked_goto(int n, int *cleaned) {
  scl_err err = SCL_OK;
  SCL_CHECK_GOTO(err, done, n >= 0, SCL_ERR_ARG, "n = %d is negative", n);
done:
  *cleaned = 1;
  return err;
}
static scl_err traced(void) {
  scl_err err = inner();
  return SCL_TRACE(err);
}

/* SCL_CHECK passes a true condition and raises the message on a false one; the GOTO form runs
 * the cleanup; scl_error_take hands over code and message (truncated to the buffer) and leaves
 * no error pending. */
static void test_check_and_take(void) {
  scl_error_clear();
  CHECK(checked(3) == SCL_OK && scl_error_message()[0] == '\0', "a true check raised");
  CHECK(checked(-2) == SCL_ERR_ARG, "a false check did not fail");
  CHECK(!strcmp(scl_error_message(), "n = -2 is negative"), "message '%s'", scl_error_message());
  CHECK(strstr(scl_error_traceback(), "checked"), "no frame: %s", scl_error_traceback());
  char msg[64];
  CHECK(scl_error_take(msg, sizeof msg) == SCL_ERR_ARG, "take returned the wrong code");
  CHECK(!strcmp(msg, "n = -2 is negative"), "taken message '%s'", msg);
  CHECK(scl_error_message()[0] == '\0' && scl_error_traceback()[0] == '\0',
        "take left the error pending");
  CHECK(scl_error_take(msg, sizeof msg) == SCL_OK && msg[0] == '\0', "nothing pending: OK, \"\"");
  int cleaned = 0;
  CHECK(checked_goto(-1, &cleaned) == SCL_ERR_ARG && cleaned, "goto form");
  char small[5];
  CHECK(scl_error_take(small, sizeof small) == SCL_ERR_ARG && !strcmp(small, "n = "),
        "truncated take '%s'", small);
  cleaned = 0;
  CHECK(checked_goto(1, &cleaned) == SCL_OK && cleaned && scl_error_message()[0] == '\0',
        "goto form, true condition");
  CHECK(traced() == SCL_ERR_FORMAT && strstr(scl_error_traceback(), "traced"),
        "SCL_TRACE frame: %s", scl_error_traceback());
  CHECK(scl_error_take(NULL, 0) == SCL_ERR_FORMAT && scl_error_message()[0] == '\0',
        "take without a buffer");
}

static void test_errors_and_memory(void) {
  scl_error_clear();
  CHECK(outer() == SCL_ERR_FORMAT, "error code not propagated");
  CHECK(strstr(scl_error_message(), "tensor x") != NULL, "message lost");
  CHECK(strstr(scl_error_traceback(), "inner") && strstr(scl_error_traceback(), "outer"),
        "traceback lacks frames: %s", scl_error_traceback());
  scl_error_clear();
  void *p = NULL;
  CHECK(scl_alloc(10, "test buffer", &p) == SCL_OK && ((uintptr_t)p % SCL_ALIGN) == 0, "alignment");
  scl_free(p);
  CHECK(scl_alloc(SIZE_MAX - 8, "test buffer", &p) == SCL_ERR_NOMEM && p == NULL,
        "an overflowing size not refused");
  scl_error_clear();
  CHECK(scl_pad_floats(0) == 0 && scl_pad_floats(1) == 16 && scl_pad_floats(16) == 16 &&
            scl_pad_floats(17) == 32 && 16 * sizeof(float) == SCL_ALIGN,
        "scl_pad_floats");
  size_t r;
  CHECK(scl_mul_overflows(SIZE_MAX / 2, 3, &r), "overflow not detected");
}

static void test_hash(void) {
  scl_hash h1 = scl_hash_bytes("abc", 3), h2;
  scl_hasher *h = NULL;
  CHECK(scl_hasher_create(&h) == SCL_OK, "hasher");
  scl_hasher_update(h, "a", 1);
  scl_hasher_update(h, "bc", 2);
  h2 = scl_hasher_digest(h);
  scl_hasher_destroy(&h);
  CHECK(h1.hi == h2.hi && h1.lo == h2.lo, "streaming hash differs from one-shot");
  /* XXH3-128("abc"), seed 0: the value Debian's `xxh128sum` prints for the bytes "abc". */
  char hex[33];
  scl_hash_hex(h1, hex);
  printf("xxh3-128(abc) = %s\n", hex);
  CHECK(strcmp(hex, "06b05ab6733a618578af5f94892f3950") == 0, "xxh3-128(abc) = %s", hex);
}

int main(void) {
  test_class_orders();
  test_philox();
  test_errors_and_memory();
  test_check_and_take();
  test_hash();
  if (failures) {
    fprintf(stderr, "test_core: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_core: all checks passed\n");
  return 0;
}
