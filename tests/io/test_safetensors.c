/* test_safetensors.c: the safetensors reader and writer (safetensors.h).
 *
 * 1. Round trip: tensors of several ranks (scalar, empty, 8-D) with special values (NaN, inf,
 *    -0, subnormals) and metadata with quotes and UTF-8 are written, read back bit-identical
 *    with identical shapes and metadata, and the file layout matches the Python library's
 *    (header padded with spaces to 8 bytes, tensors sorted by name, contiguous data).
 * 2. Conversions: io_f16_to_f32 against an independent formula for all 65536 halves, BF16.
 * 3. Leniency: a header not padded to 8 bytes (unaligned data) and empty tensors still read.
 * 4. Every malformed file the reader must refuse, generated here, refused with the expected
 *    code and a message naming the file (and the tensor or dtype where one is involved); every
 *    message is printed. Writer misuse is refused with SCL_ERR_ARG. */
#include <math.h>
#include <stdint.h>

#include "io/io_test.h"
#include "safecl/safetensors.h"

static char dir[256];

/* Writes <dir>/<name>: 8-byte little-endian length of `header`, header, data_len zero bytes. */
static const char *make_file(const char *name, const char *header, size_t data_len) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  size_t hl = strlen(header);
  unsigned char *buf = calloc(8 + hl + data_len + 1, 1);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, header, hl);
  if (write_raw(path, buf, 8 + hl + data_len) != 0) {
    perror(path);
    exit(1);
  }
  free(buf);
  return path;
}

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static void test_round_trip(void) {
  float w[12], b[4], scalar = -0.0f, deep[16];
  for (int i = 0; i < 12; i++) w[i] = (float)i * 0.25f - 1.0f;
  w[3] = NAN;
  w[4] = INFINITY;
  w[5] = -INFINITY;
  w[6] = 1e-45f; /* smallest subnormal */
  for (int i = 0; i < 4; i++) b[i] = 1.0f / (float)(i + 3);
  for (int i = 0; i < 16; i++) deep[i] = (float)(i * i) - 7.5f;
  io_st_entry e[5] = {
      {"b.weight", 2, {3, 4}, w},
      {"a.bias", 1, {4}, b},
      {"scalar", 0, {0}, &scalar},
      {"empty", 2, {0, 5}, NULL},
      {"c.deep", 8, {1, 2, 1, 2, 1, 2, 1, 2}, deep},
  };
  const char *mk[2] = {"format", "note"};
  const char *mv[2] = {"pt", "h\xc3\xa9llo \"quoted\"\n\ttab"};
  char path[512];
  snprintf(path, sizeof path, "%s/round.safetensors", dir);
  CHECK_OK(io_safetensors_write(path, e, 5, mk, mv, 2));
  io_safetensors *st = NULL;
  CHECK_OK(io_safetensors_open(path, &st));
  if (!st) return;
  CHECK(io_safetensors_count(st) == 5, "count %d", io_safetensors_count(st));
  const char *sorted[5] = {"a.bias", "b.weight", "c.deep", "empty", "scalar"};
  const unsigned char *expect_data = NULL;
  for (int i = 0; i < 5; i++) {
    const io_tensor_info *t = io_safetensors_at(st, i);
    CHECK(t && strcmp(t->name, sorted[i]) == 0, "tensor %d is '%s', expected '%s'", i,
          t ? t->name : "?", sorted[i]);
    if (expect_data) CHECK(t->data == expect_data, "tensor '%s' not contiguous", t->name);
    expect_data = (const unsigned char *)t->data + t->nbytes;
  }
  for (int k = 0; k < 5; k++) {
    const io_tensor_info *t = io_safetensors_find(st, e[k].name);
    CHECK(t != NULL, "tensor '%s' missing", e[k].name);
    if (!t) continue;
    CHECK(t->dtype == IO_DTYPE_F32 && t->ndim == e[k].ndim, "'%s': dtype/ndim", t->name);
    int64_t numel = 1;
    for (int d = 0; d < e[k].ndim; d++) {
      CHECK(t->shape[d] == e[k].shape[d], "'%s' shape[%d]", t->name, d);
      numel *= e[k].shape[d];
    }
    CHECK(t->numel == numel, "'%s' numel %lld", t->name, (long long)t->numel);
    float got[16];
    CHECK_OK(io_safetensors_read_f32(st, t, got, numel));
    for (int64_t i = 0; i < numel; i++)
      CHECK(bits_of(got[i]) == bits_of(e[k].data[i]), "'%s'[%lld] differs", t->name, (long long)i);
  }
  CHECK(io_safetensors_metadata_count(st) == 2, "metadata count");
  for (int i = 0; i < 2; i++) {
    const char *v = io_safetensors_metadata(st, mk[i]);
    CHECK(v && strcmp(v, mv[i]) == 0, "metadata '%s' = '%s'", mk[i], v ? v : "(null)");
  }
  CHECK(io_safetensors_metadata(st, "absent") == NULL, "absent metadata key found");
  float one[4];
  scl_error_clear();
  expect_error("read_f32 with a wrong count",
               io_safetensors_read_f32(st, io_safetensors_find(st, "a.bias"), one, 3), SCL_ERR_ARG,
               (const char *[]){path, "a.bias", NULL});
  io_safetensors_close(&st);
  CHECK(st == NULL, "close did not clear the handle");
  io_safetensors_close(&st);

  size_t len = 0;
  char *raw = read_raw(path, &len);
  uint64_t hl = 0;
  for (int i = 7; raw && i >= 0; i--) hl = (hl << 8) | (unsigned char)raw[i];
  CHECK(raw && (8 + hl) % 8 == 0, "header length %llu not padded", (unsigned long long)hl);
  CHECK(raw && raw[8] == '{' && strncmp(raw + 9, "\"__metadata__\"", 14) == 0,
        "__metadata__ not first");
  CHECK(raw && raw[8 + hl - 1] == ' ', "header not padded with spaces");
  free(raw);
  printf("round trip: 5 tensors bit-identical, metadata and layout: ok\n");
}

/* Reference value of a half: (-1)^s x mant x 2^-24 (subnormal) or (1024+mant) x 2^(e-25). */
static void test_conversions(void) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float got = io_f16_to_f32((uint16_t)h);
    int s = (int)(h >> 15), e = (int)((h >> 10) & 31), m = (int)(h & 1023);
    double want = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    if (s) want = -want;
    if (e == 31) {
      bad += m ? !isnan(got) : !(isinf(got) && (got < 0) == (s == 1));
      continue;
    }
    bad += (double)got != want || (signbit(got) != 0) != (s == 1);
  }
  CHECK(bad == 0, "%d of 65536 halves convert wrongly", bad);
  CHECK(io_bf16_to_f32(0x3f80) == 1.0f && io_bf16_to_f32(0xc000) == -2.0f &&
            isinf(io_bf16_to_f32(0x7f80)) && isnan(io_bf16_to_f32(0x7fc0)) &&
            io_bf16_to_f32(0x0001) == ldexpf(1.0f, -133),
        "bf16 conversion");
  printf("f16 -> f32 exact for all 65536 halves, bf16 spot checks: %s\n", bad ? "FAIL" : "ok");
}

/* A header that is not padded (data starts at an odd offset) and zero-sized tensors at shared
 * offsets are legal; the reader copies from unaligned memory. */
static void test_lenient(void) {
  const char *hdr =
      "{\"z\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[0,0]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
      "\"y\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
      "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
  char path[512];
  snprintf(path, sizeof path, "%s/lenient.safetensors", dir);
  size_t hl = strlen(hdr);
  unsigned char buf[1024] = {0};
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, hdr, hl);
  const unsigned char data[8] = {0x00, 0x3c, 0x00, 0xc0, 0x00, 0x00, 0x80, 0x3f};
  memcpy(buf + 8 + hl, data, 8);
  CHECK(write_raw(path, buf, 8 + hl + 8) == 0, "write %s", path);
  io_safetensors *st = NULL;
  CHECK_OK(io_safetensors_open(path, &st));
  if (!st) return;
  float h[2] = {0, 0}, f = 0;
  CHECK_OK(io_safetensors_read_f32(st, io_safetensors_find(st, "h"), h, 2));
  CHECK_OK(io_safetensors_read_f32(st, io_safetensors_find(st, "f"), &f, 1));
  CHECK(h[0] == 1.0f && h[1] == -2.0f && f == 1.0f, "values %g %g %g", h[0], h[1], f);
  CHECK(io_safetensors_count(st) == 4 && io_safetensors_metadata_count(st) == 0, "count");
  io_safetensors_close(&st);
  printf("unpadded header, unaligned data, empty tensors: ok\n");
}

#define T1(dtype, shape, offs) \
  "{\"w\":{\"dtype\":" dtype ",\"shape\":" shape ",\"data_offsets\":" offs "}}"

typedef struct bad_case {
  const char *label;
  const char *header;
  size_t data_len;
  const char *needle1, *needle2; /* besides the path; NULL if none */
} bad_case;

static const bad_case bad_cases[] = {
    {"header not JSON", "{\"w\": {\"dtype\": ", 0, NULL, NULL},
    {"header empty", "", 0, NULL, NULL},
    {"header not an object", "[1, 2, 3]", 0, NULL, NULL},
    {"garbage after the JSON", "{} trailing", 0, NULL, NULL},
    {"entry not an object", "{\"w\": 5}", 0, "'w'", NULL},
    {"dtype missing", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'w'", "dtype"},
    {"dtype not a string", T1("4", "[1]", "[0,4]"), 4, "'w'", "dtype"},
    {"dtype I64", T1("\"I64\"", "[1]", "[0,8]"), 8, "'w'", "I64"},
    {"dtype F64", T1("\"F64\"", "[1]", "[0,8]"), 8, "'w'", "F64"},
    {"dtype unknown", T1("\"Q7\"", "[1]", "[0,4]"), 4, "'w'", "Q7"},
    {"shape missing", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "'w'", "shape"},
    {"shape not an array", T1("\"F32\"", "3", "[0,12]"), 12, "'w'", "shape"},
    {"shape negative", T1("\"F32\"", "[-1,2]", "[0,8]"), 8, "'w'", "shape[0]"},
    {"shape not integer", T1("\"F32\"", "[2,1.5]", "[0,12]"), 12, "'w'", "shape[1]"},
    {"shape element a string", T1("\"F32\"", "[\"2\"]", "[0,8]"), 8, "'w'", "shape[0]"},
    {"shape beyond 2^53", T1("\"F32\"", "[1e300]", "[0,4]"), 4, "'w'", "shape[0]"},
    {"too many dimensions", T1("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, "'w'", "9"},
    {"data_offsets missing", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "'w'", "data_offsets"},
    {"data_offsets one number", T1("\"F32\"", "[1]", "[0]"), 4, "'w'", "data_offsets"},
    {"data_offsets three numbers", T1("\"F32\"", "[1]", "[0,4,8]"), 8, "'w'", "data_offsets"},
    {"data_offsets negative", T1("\"F32\"", "[1]", "[-4,0]"), 4, "'w'", "data_offsets"},
    {"data_offsets strings", T1("\"F32\"", "[1]", "[\"0\",\"4\"]"), 4, "'w'", "data_offsets"},
    {"data_offsets not an array", T1("\"F32\"", "[1]", "4"), 4, "'w'", "data_offsets"},
    {"data_offsets begin > end", T1("\"F32\"", "[1]", "[8,4]"), 8, "'w'", "begin 8 > end 4"},
    {"end beyond the data section", T1("\"F32\"", "[4]", "[0,16]"), 8, "'w'", "16"},
    {"numel x dtype size != span", T1("\"F32\"", "[3]", "[0,8]"), 8, "'w'", "12 bytes"},
    {"F16 size != span", T1("\"F16\"", "[3]", "[0,12]"), 12, "'w'", "6 bytes"},
    {"numel overflows", T1("\"F32\"", "[4294967296,4294967296,4294967296]", "[0,0]"), 0, "'w'",
     "overflow"},
    {"byte size overflows", T1("\"F32\"", "[9007199254740992,1024]", "[0,0]"), 0, "'w'",
     "overflow"},
    {"overlapping tensors",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, "'b'", "'a'"},
    {"tensor inside another",
     "{\"big\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"small\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}",
     16, "'small'", "'big'"},
    {"duplicate tensor names",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, "'w'", "more than once"},
    {"__metadata__ not an object", "{\"__metadata__\": 3}", 0, "__metadata__", NULL},
    {"__metadata__ value not a string", "{\"__metadata__\": {\"epoch\": 3}}", 0, "epoch", NULL},
    {"__metadata__ twice", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, "__metadata__", NULL},
};

static void expect_refused(const char *label, const char *path, scl_err code, const char *n1,
                           const char *n2) {
  io_safetensors *st = NULL;
  scl_error_clear();
  scl_err err = io_safetensors_open(path, &st);
  expect_error(label, err, code, (const char *[]){path, n1, n2, NULL});
  CHECK(st == NULL, "%s: handle not NULL after failure", label);
  io_safetensors_close(&st);
}

static void test_malformed(void) {
  char path[512];
  /* Files too short or with an impossible header length, written byte by byte. */
  snprintf(path, sizeof path, "%s/short.safetensors", dir);
  CHECK(write_raw(path, "\x10\0\0\0\0", 5) == 0, "write");
  expect_refused("file shorter than 8 bytes", path, SCL_ERR_FORMAT, "5 bytes", NULL);
  snprintf(path, sizeof path, "%s/empty.safetensors", dir);
  CHECK(write_raw(path, "", 0) == 0, "write");
  expect_refused("empty file", path, SCL_ERR_FORMAT, "0 bytes", NULL);
  snprintf(path, sizeof path, "%s/long_header.safetensors", dir);
  CHECK(write_raw(path, "\x00\x01\0\0\0\0\0\0{}", 10) == 0, "write");
  expect_refused("header length beyond the file", path, SCL_ERR_FORMAT, "256", NULL);
  snprintf(path, sizeof path, "%s/absurd.safetensors", dir);
  CHECK(write_raw(path, "\0\0\0\0\0\x01\0\0{}", 10) == 0, "write");
  expect_refused("absurd header length", path, SCL_ERR_FORMAT, "absurd", NULL);
  snprintf(path, sizeof path, "%s/missing.safetensors", dir);
  expect_refused("missing file", path, SCL_ERR_IO, NULL, NULL);
  expect_refused("a directory", dir, SCL_ERR_IO, "regular", NULL);

  int n = (int)(sizeof bad_cases / sizeof bad_cases[0]);
  for (int i = 0; i < n; i++) {
    const bad_case *c = &bad_cases[i];
    char name[64];
    snprintf(name, sizeof name, "bad%02d.safetensors", i);
    expect_refused(c->label, make_file(name, c->header, c->data_len), SCL_ERR_FORMAT, c->needle1,
                   c->needle2);
  }
  printf("malformed files refused: %d\n", n + 6);
}

static void test_writer_misuse(void) {
  float v[2] = {1, 2};
  char path[512];
  snprintf(path, sizeof path, "%s/misuse.safetensors", dir);
  io_st_entry dup[2] = {{"x", 1, {2}, v}, {"x", 1, {2}, v}};
  scl_error_clear();
  expect_error("writer: duplicate names", io_safetensors_write(path, dup, 2, NULL, NULL, 0),
               SCL_ERR_ARG, (const char *[]){path, "'x'", NULL});
  io_st_entry meta[1] = {{"__metadata__", 1, {2}, v}};
  expect_error("writer: reserved name", io_safetensors_write(path, meta, 1, NULL, NULL, 0),
               SCL_ERR_ARG, (const char *[]){path, "__metadata__", NULL});
  io_st_entry neg[1] = {{"n", 2, {2, -1}, v}};
  expect_error("writer: negative dimension", io_safetensors_write(path, neg, 1, NULL, NULL, 0),
               SCL_ERR_ARG, (const char *[]){path, "'n'", NULL});
  const char *k[2] = {"k", "k"}, *val[2] = {"1", "2"};
  io_st_entry ok[1] = {{"fine", 1, {2}, v}};
  expect_error("writer: duplicate metadata key", io_safetensors_write(path, ok, 1, k, val, 2),
               SCL_ERR_ARG, (const char *[]){path, "'k'", NULL});
  CHECK(!file_exists(path), "a refused write created '%s'", path);
}

int main(void) {
  snprintf(dir, sizeof dir, "%s", scratch_dir("safetensors_"));
  test_round_trip();
  test_conversions();
  test_lenient();
  test_malformed();
  test_writer_misuse();
  if (failures == 0) scratch_remove(dir);
  printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
