/* synthetic.c: a class-structured image dataset generated on the fly, for tests and dry runs.
 *
 * Class c has a base colour and two plane waves (integer frequencies, per-channel amplitudes)
 * drawn from the counter-based RNG keyed by (seed, c); image j of class c in a split shifts the
 * waves by a random phase, jitters brightness and contrast, and adds per-pixel noise, all drawn
 * from the stream keyed by (seed, split, c, j). Classes therefore differ in colour and texture
 * while no two images are equal; the task is deliberately easy (nearest class mean on raw pixels
 * scores ~100 % at 100 classes, 32 px), because its job is to show that a pipeline learns, not
 * to rank methods.
 * Pixels come from IEEE float adds, multiplies and divides and integer noise only, no libm
 * transcendental, so (seed, split, class, index) gives the same bytes on every machine and
 * compiler that honours -ffp-contract=off (C11 mode does). The waves' frequencies are in cycles
 * per image, so a class looks alike at every image_size. Generation costs about a millisecond
 * per 224x224 image.
 * `difficulty` d in [0, 1) blends every image toward a random other class: with weight
 * d * U(0.5, 1), its colour and waves become those of the distractor, so classes overlap and
 * accuracies fall below 100 % (d = 0 draws nothing extra and reproduces version 1 bit for bit). */
#include <math.h>
#include <string.h>

#include "dataset_impl.h"

#define SYN_MAX_SIDE 4096
#define SYN_MAX_CLASSES (1 << 20)
/* Per-image shift of the class waves, in periods: enough that images differ in layout, small
 * enough that a class keeps a recognisable template (a full period would leave only colour). */
#define SYN_SHIFT 0.35f
#define SYN_VERSION 1 /* bump when the generator changes: it is part of the manifest */

typedef struct syn_class {
  float base[3];
  int fx[2], fy[2];
  float amp[2][3];
} syn_class;

typedef struct syn_image {
  float phase[2], gain, bias;
  float mix; /* weight of the distractor class (0 when difficulty is 0) */
  syn_class other;
} syn_image;

static float uniform(scl_rng *r, float lo, float hi) {
  return lo + (hi - lo) * scl_rng_uniformf(r);
}

static void class_params(uint64_t seed, int64_t c, syn_class *k) {
  scl_rng r;
  scl_rng_init(&r, seed, SCL_STREAM_SYNTHETIC, 0, (uint32_t)c);
  for (int ch = 0; ch < 3; ch++) k->base[ch] = uniform(&r, 40.0f, 215.0f);
  for (int w = 0; w < 2; w++) {
    do {
      k->fx[w] = (int)(scl_rng_u32(&r) % 9) - 4;
      k->fy[w] = (int)(scl_rng_u32(&r) % 9) - 4;
    } while (k->fx[w] == 0 && k->fy[w] == 0);
    for (int ch = 0; ch < 3; ch++) k->amp[w][ch] = uniform(&r, -45.0f, 45.0f);
  }
}

/* A smooth (C1) periodic wave with period 1 and range [-1, 1]: two parabolic arcs, a stand-in
 * for sin(2 pi t) that needs no libm and so is bit-reproducible. */
static float wave(float t) {
  float u = t - floorf(t);
  return u < 0.5f ? 16.0f * u * (0.5f - u) : -16.0f * (u - 0.5f) * (1.0f - u);
}

scl_err ds_synthetic_open(data_dataset *ds, const data_source *src) {
  SCL_CHECK(src->n_classes >= 1 && src->n_classes <= SYN_MAX_CLASSES && src->per_class >= 1 &&
                src->per_class <= UINT32_MAX && src->image_size >= 8 &&
                src->image_size <= SYN_MAX_SIDE && src->n_classes <= INT64_MAX / src->per_class,
            SCL_ERR_ARG,
            "synthetic dataset: n_classes %lld (1..%d), per_class %lld (>= 1), "
            "image_size %d (8..%d): out of range",
            (long long)src->n_classes, SYN_MAX_CLASSES, (long long)src->per_class, src->image_size,
            SYN_MAX_SIDE);
  ds->n_classes = src->n_classes;
  ds->per_class = src->per_class;
  ds->count = src->n_classes * src->per_class;
  ds->image_size = src->image_size;
  ds->seed = src->seed;
  SCL_CHECK(src->difficulty >= 0.0 && src->difficulty < 1.0, SCL_ERR_ARG,
            "synthetic dataset: difficulty %g outside [0, 1)", src->difficulty);
  ds->difficulty = (float)src->difficulty;
  ds->split_id = strcmp(src->split, "test") == 0;
  int64_t cap = 0;
  SCL_CALL(ds_labels_reserve(ds, ds->count, &cap));
  for (int64_t c = 0; c < ds->n_classes; c++) {
    SCL_CALL(strpool_addf(&ds->classes, "c%04lld", (long long)c));
    for (int64_t j = 0; j < ds->per_class; j++) {
      ds->labels[c * ds->per_class + j] = (int32_t)c;
      SCL_CALL(strpool_addf(&ds->paths, "synthetic/%s/c%04lld/%06lld", src->split, (long long)c,
                            (long long)j));
    }
  }
  scl_hasher *h = NULL;
  SCL_CALL(scl_hasher_create(&h));
  ds_manifest_begin(h, "synthetic", src->split);
  ds_manifest_u64(h, SYN_VERSION);
  ds_manifest_u64(h, ds->seed);
  ds_manifest_u64(h, (uint64_t)ds->n_classes);
  ds_manifest_u64(h, (uint64_t)ds->per_class);
  ds_manifest_u64(h, (uint64_t)ds->image_size);
  if (ds->difficulty > 0.0f) {
    uint32_t bits;
    memcpy(&bits, &ds->difficulty, sizeof bits);
    ds_manifest_u64(h, bits);
  }
  ds->manifest = scl_hasher_digest(h);
  scl_hasher_destroy(&h);
  return SCL_OK;
}

/* Triangular noise in [-24, 24] levels from two bytes of a draw. */
static float noise(uint32_t bits) {
  return (float)((int)(bits & 0xff) + (int)((bits >> 8) & 0xff) - 255) * (24.0f / 255.0f);
}

scl_err ds_synthetic_read(const data_dataset *ds, int64_t i, data_image *img) {
  int s = ds->image_size;
  SCL_CALL(io_image_reserve(img, s, s));
  int64_t c = i / ds->per_class, j = i % ds->per_class;
  syn_class k;
  class_params(ds->seed, c, &k);
  scl_rng r;
  /* epoch word: split in bit 24, class below it; index word: the image within the class */
  scl_rng_init(&r, ds->seed, SCL_STREAM_SYNTHETIC, (uint32_t)(((ds->split_id + 1) << 24) | c),
               (uint32_t)j);
  syn_image m; /* one statement per draw: initializer lists do not sequence their calls */
  m.phase[0] = uniform(&r, 0.0f, SYN_SHIFT);
  m.phase[1] = uniform(&r, 0.0f, SYN_SHIFT);
  m.gain = uniform(&r, 0.85f, 1.15f);
  m.bias = uniform(&r, -12.0f, 12.0f);
  m.mix = 0.0f;
  if (ds->difficulty > 0.0f && ds->n_classes > 1) {
    int64_t d = (int64_t)(scl_rng_u32(&r) % (uint32_t)(ds->n_classes - 1));
    class_params(ds->seed, d >= c ? d + 1 : d, &m.other);
    m.mix = ds->difficulty * uniform(&r, 0.5f, 1.0f);
    /* Blend the class parameters; the integer frequencies follow the stronger class. */
    for (int ch = 0; ch < 3; ch++) {
      k.base[ch] += m.mix * (m.other.base[ch] - k.base[ch]);
      for (int w = 0; w < 2; w++) k.amp[w][ch] *= 1.0f - m.mix;
    }
  }
  for (int y = 0; y < s; y++) {
    uint8_t *row = img->rgb + (size_t)y * s * 3;
    for (int x = 0; x < s; x++) {
      float w0 = wave((float)(k.fx[0] * x + k.fy[0] * y) / (float)s + m.phase[0]);
      float w1 = wave((float)(k.fx[1] * x + k.fy[1] * y) / (float)s + m.phase[1]);
      uint32_t b0 = scl_rng_u32(&r), b1 = scl_rng_u32(&r);
      uint32_t bits[3] = {b0, b0 >> 16, b1};
      float o0 = 0.0f, o1 = 0.0f;
      if (m.mix > 0.0f) {
        o0 = wave((float)(m.other.fx[0] * x + m.other.fy[0] * y) / (float)s + m.phase[0]);
        o1 = wave((float)(m.other.fx[1] * x + m.other.fy[1] * y) / (float)s + m.phase[1]);
      }
      for (int ch = 0; ch < 3; ch++) {
        float v = k.base[ch] + m.bias + m.gain * (k.amp[0][ch] * w0 + k.amp[1][ch] * w1) +
                  noise(bits[ch]);
        if (m.mix > 0.0f) v += m.gain * m.mix * (m.other.amp[0][ch] * o0 + m.other.amp[1][ch] * o1);
        int q = (int)floorf(v + 0.5f);
        row[3 * x + ch] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
      }
    }
  }
  return SCL_OK;
}
