/* features.c: the `features` job: dataset -> test transform -> frozen ViT -> HDF5.
 *
 * One process, batches in dataset order through run_extract (extract.c). All features stay in
 * memory until the end (100k x 768 floats = 300 MB) and are written in one call, then the file is
 * published by rename, so an interrupted run leaves nothing half-written. What this does not do:
 * distribute over ranks: it is a one-off export run in one process, while a trial shards its own
 * extraction over its group (trial.c). */
#include "safecl/features.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/data.h"
#include "safecl/extract.h"
#include "safecl/h5.h"
#include "safecl/vit.h"

#define K(...) CFG_KEY(run_features_cfg, __VA_ARGS__)

static const cfg_key features_keys[] = {
    K("backbone.arch", CFG_STRING, arch, 0, 0, "vit_tiny_patch16_224",
      "vit_tiny_patch16_224|vit_small_patch16_224|vit_base_patch16_224|vit_large_patch16_224",
      "ViT preset"),
    K("backbone.weights", CFG_STRING, weights, 0, 0, "", NULL,
      ".safetensors file in timm or Hugging Face naming; empty: random weights from backbone.seed"),
    K("backbone.seed", CFG_INT, backbone_seed, 0, 4294967295.0, "1993", NULL,
      "seed of the random weights when backbone.weights is empty"),
    K("backbone.ignore_unexpected", CFG_BOOL, ignore_unexpected, 0, 1, "false", NULL,
      "skip tensors of the weights file that the model does not use instead of refusing it"),
    K("dataset.format", CFG_STRING, format, 0, 0, "synthetic", "folder|cifar100|synthetic",
      "dataset reader"),
    K("dataset.root", CFG_STRING, root, 0, 0, "", NULL,
      "folder: ROOT/{train,test}/<class>/<image>; cifar100: folder with cifar-100-binary/"),
    K("dataset.split", CFG_STRING, split, 0, 0, "test", "train|test", "which split to extract"),
    K("dataset.resize", CFG_INT, resize, 0, 8192, "224", NULL,
      "Resize(shorter side, bicubic) before the crop; 0 or the image's own short side: none"),
    K("dataset.crop", CFG_INT, crop, 8, 8192, "224", NULL, "CenterCrop size; must equal the ViT's"),
    K("dataset.max_image_pixels", CFG_INT, max_image_pixels, 1, 178956970, "89478485", NULL,
      "largest width x height of an image that is decoded (PIL's MAX_IMAGE_PIXELS); at most "
      "PIL's error limit"),
    K("dataset.mean", CFG_FLOATS, mean, -10, 10, "[]", NULL,
      "per-channel mean to subtract after ToTensor; [] = none (the SAFE default)"),
    K("dataset.std", CFG_FLOATS, std, 1e-6, 100, "[]", NULL, "per-channel std; [] = none"),
    K("dataset.limit", CFG_INT, limit, 0, 1e12, "0", NULL,
      "at most N images of each class (the first N in dataset order); 0 = all"),
    K("dataset.synthetic.classes", CFG_INT, syn_classes, 1, 100000, "10", NULL,
      "synthetic: number of classes"),
    K("dataset.synthetic.train_per_class", CFG_INT, syn_train_per_class, 1, 1000000, "8", NULL,
      "synthetic: training images per class (dataset.split = train)"),
    K("dataset.synthetic.test_per_class", CFG_INT, syn_test_per_class, 1, 1000000, "8", NULL,
      "synthetic: test images per class (dataset.split = test)"),
    K("dataset.synthetic.size", CFG_INT, syn_size, 8, 4096, "224", NULL, "synthetic: image side"),
    K("dataset.synthetic.seed", CFG_INT, syn_seed, 0, 4294967295.0, "1993", NULL,
      "synthetic: generator seed"),
    K("dataset.synthetic.difficulty", CFG_FLOAT, syn_difficulty, 0, 0.99, "0.0", NULL,
      "synthetic: blend of every image toward another class (0 = easy)"),
    K("eval.batch", CFG_INT, batch, 1, 4096, "16", NULL, "images per forward pass"),
    K("threads", CFG_INT, threads, 0, 1024, "0", NULL,
      "compute threads; 0 = OPENBLAS_NUM_THREADS or the core count"),
    K("out", CFG_STRING, out, 0, 0, "features.h5", NULL, "output HDF5 file"),
};
#undef K

/* `safecl train` and `safecl features` name the same things alike (dataset.*, eval.batch); the
 * names features used before still work with a deprecation line, except two whose meaning
 * changed. */
static const cfg_renamed features_renamed[] = {
    {"data.root", "dataset.root", 0, NULL},
    {"data.format", "dataset.format", 0, NULL},
    {"data.split", "dataset.split", 0, NULL},
    {"data.resize", "dataset.resize", 0, NULL},
    {"data.crop", "dataset.crop", 0, NULL},
    {"data.mean", "dataset.mean", 0, NULL},
    {"data.std", "dataset.std", 0, NULL},
    {"data.synthetic.classes", "dataset.synthetic.classes", 0, NULL},
    {"data.synthetic.size", "dataset.synthetic.size", 0, NULL},
    {"data.synthetic.seed", "dataset.synthetic.seed", 0, NULL},
    {"data.synthetic.difficulty", "dataset.synthetic.difficulty", 0, NULL},
    {"batch", "eval.batch", 0, NULL},
    {"data.limit", "dataset.limit", 1,
     "dataset.limit keeps the first N images of each class, data.limit kept the first N of the "
     "split"},
    {"data.synthetic.per_class", "dataset.synthetic.test_per_class", 1,
     "set dataset.synthetic.train_per_class or dataset.synthetic.test_per_class, as for safecl "
     "train; the one of dataset.split is used"},
};

const cfg_schema run_features_schema = {
    "features", features_keys, (int)(sizeof features_keys / sizeof features_keys[0]),
    features_renamed, (int)(sizeof features_renamed / sizeof features_renamed[0])};

typedef struct features_job {
  const run_features_cfg *cfg;
  data_dataset *ds;
  vit_model *model;
  int64_t n, dim;
  float *features; /* n x dim */
  int32_t *labels;
  float mean[3], std[3];
  int normalise;
  double t_data, t_forward;
} features_job;

static scl_err check_norm(const run_features_cfg *cfg, features_job *job) {
  if (cfg->mean.n == 0 && cfg->std.n == 0) return SCL_OK;
  SCL_CHECK(cfg->mean.n == 3 && cfg->std.n == 3, SCL_ERR_ARG,
            "dataset.mean and dataset.std must both hold 3 values (or both be [])");
  for (int c = 0; c < 3; c++) {
    job->mean[c] = (float)cfg->mean.v[c];
    job->std[c] = (float)cfg->std.v[c];
  }
  job->normalise = 1;
  return SCL_OK;
}

static scl_err open_inputs(const run_features_cfg *cfg, features_job *job) {
  data_source src = {
      .format = cfg->format,
      .root = cfg->root,
      .split = cfg->split,
      .n_classes = cfg->syn_classes,
      .per_class = strcmp(cfg->split, "train") ? cfg->syn_test_per_class : cfg->syn_train_per_class,
      .limit = cfg->limit,
      .image_size = (int)cfg->syn_size,
      .seed = (uint64_t)cfg->syn_seed,
      .difficulty = cfg->syn_difficulty,
      .max_image_pixels = cfg->max_image_pixels};
  if (strcmp(cfg->format, "synthetic") && !cfg->root[0])
    return SCL_ERROR(SCL_ERR_ARG, "dataset.root is empty; dataset.format = \"%s\" needs it",
                     cfg->format);
  SCL_CALL(data_dataset_open(&src, &job->ds));
  job->n = data_dataset_count(job->ds);

  int64_t batch = cfg->batch < job->n ? cfg->batch : job->n;
  SCL_CALL(vit_model_open(cfg->arch, cfg->crop, "dataset.crop", cfg->weights,
                          cfg->ignore_unexpected ? VIT_LOAD_IGNORE_UNEXPECTED : 0u,
                          (uint64_t)cfg->backbone_seed, batch > 0 ? batch : 1, (int)cfg->threads,
                          &job->model));
  job->dim = job->model->cfg.width;
  return SCL_OK;
}

static scl_err vit_network_forward(void *ctx, const float *images, int64_t B, float *out) {
  return vit_model_forward((vit_model *)ctx, images, B, out);
}

static scl_err extract(features_job *job) {
  const run_features_cfg *cfg = job->cfg;
  int64_t n = job->n > 0 ? job->n : 1;
  SCL_CALL(
      scl_alloc((size_t)n * (size_t)job->dim * sizeof(float), "features", (void **)&job->features));
  SCL_CALL(scl_alloc((size_t)n * sizeof(int32_t), "labels", (void **)&job->labels));
  for (int64_t i = 0; i < job->n; i++) job->labels[i] = (int32_t)data_dataset_label(job->ds, i);
  learn_network net = {.name = cfg->arch,
                       .dim = job->dim,
                       .frozen = 1,
                       .forward = vit_network_forward,
                       .ctx = job->model};
  run_extract_opts opts = {.resize = (int)cfg->resize,
                           .crop = (int)cfg->crop,
                           .mean = job->normalise ? job->mean : NULL,
                           .std = job->normalise ? job->std : NULL,
                           .batch = job->model->max_batch,
                           .what = "features"};
  SCL_CALL(run_extract(&net, job->ds, NULL, job->n, &opts, job->features, &job->t_data,
                       &job->t_forward));
  return SCL_OK;
}

/* Writes the results and provenance under a temporary name, then publishes. */
static scl_err write_output(features_job *job, const char *config_text) {
  const run_features_cfg *cfg = job->cfg;
  h5_file *f = NULL;
  scl_err err = SCL_OK;
  const char **paths = NULL, **classes = NULL;
  int64_t nc = data_dataset_num_classes(job->ds);
  paths = malloc((size_t)(job->n ? job->n : 1) * sizeof *paths);
  classes = malloc((size_t)(nc ? nc : 1) * sizeof *classes);
  SCL_CHECK_GOTO(err, done, paths && classes, SCL_ERR_NOMEM, "path table of %s", cfg->out);
  for (int64_t i = 0; i < job->n; i++) paths[i] = data_dataset_path(job->ds, i);
  for (int64_t c = 0; c < nc; c++) classes[c] = data_dataset_class_name(job->ds, c);

  char manifest[33], weights_hash[33] = "random";
  scl_hash_hex(data_dataset_manifest_hash(job->ds), manifest);
  if (cfg->weights[0]) {
    scl_hash wh;
    SCL_CALL_GOTO(err, scl_hash_file(cfg->weights, "backbone.weights", &wh), done);
    scl_hash_hex(wh, weights_hash);
  }
  SCL_CALL_GOTO(err, h5_file_create_atomic(cfg->out, &f), done);
  SCL_CALL_GOTO(err, h5_write_f32_2d(f, "features", job->features, job->n, job->dim, 0), done);
  SCL_CALL_GOTO(err, h5_write_i32_1d(f, "labels", job->labels, job->n), done);
  SCL_CALL_GOTO(err, h5_write_strings(f, "paths", paths, job->n), done);
  SCL_CALL_GOTO(err, h5_write_strings(f, "class_names", classes, nc), done);
  SCL_CALL_GOTO(err, h5_write_provenance(f, RUN_FEATURES_SCHEMA_VERSION), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "kind", "features"), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "config", config_text), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "backbone_arch", cfg->arch), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "backbone_weights", cfg->weights), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "backbone_weights_xxh3", weights_hash), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "dataset_manifest_xxh3", manifest), done);
  SCL_CALL_GOTO(err, h5_attr_write_i64(f, NULL, "threads", job->model->threads), done);
  SCL_CALL_GOTO(err, h5_attr_write_f64(f, NULL, "seconds_data", job->t_data), done);
  SCL_CALL_GOTO(err, h5_attr_write_f64(f, NULL, "seconds_forward", job->t_forward), done);
  SCL_CALL_GOTO(err, h5_file_commit(&f), done);
done:
  h5_file_abort(&f);
  free(paths);
  free(classes);
  return err;
}

scl_err run_features(const run_features_cfg *cfg, const char *config_text) {
  features_job job = {.cfg = cfg};
  scl_err err = SCL_OK;
  double t0 = scl_now();
  SCL_CALL_GOTO(err, check_norm(cfg, &job), done);
  SCL_CALL_GOTO(err, open_inputs(cfg, &job), done);
  SCL_CALL_GOTO(err, extract(&job), done);
  SCL_CALL_GOTO(err, write_output(&job, config_text), done);
  SCL_INFO("features: wrote %lld x %lld to %s in %.1f s (data %.1f s, forward %.1f s)",
           (long long)job.n, (long long)job.dim, cfg->out, scl_now() - t0, job.t_data,
           job.t_forward);
done:
  scl_free(job.features);
  scl_free(job.labels);
  vit_model_destroy(&job.model);
  data_dataset_close(&job.ds);
  return err;
}
