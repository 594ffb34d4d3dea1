/* features.h: extract frozen-ViT CLS features of a dataset into an HDF5 file.
 *
 * The output file holds /features (N x D float32, in dataset order: sorted class, then sorted
 * file name), /labels (N int32), /paths (N strings, the dataset's stable sample names) and
 * /class_names, plus provenance attributes (schema version, code and library versions, the
 * effective config, the hashes of the weights file and of the dataset manifest, timings). */
#ifndef SAFECL_FEATURES_H
#define SAFECL_FEATURES_H

#include "safecl/config.h"
#include "safecl/core.h"

#define RUN_FEATURES_SCHEMA_VERSION 1

typedef struct run_features_cfg {
  char *arch;
  char *weights;
  int64_t backbone_seed;
  int ignore_unexpected;
  char *format;
  char *root;
  char *split;
  int64_t resize;
  int64_t crop;
  int64_t max_image_pixels;
  cfg_floats mean;
  cfg_floats std;
  int64_t limit; /* at most this many images per class; 0 = all */
  int64_t syn_classes;
  int64_t syn_train_per_class;
  int64_t syn_test_per_class;
  int64_t syn_size;
  int64_t syn_seed;
  double syn_difficulty;
  int64_t batch;
  int64_t threads;
  char *out;
} run_features_cfg;

extern const cfg_schema run_features_schema;

/* Runs the extraction described by cfg; `config_text` (cfg_dump of cfg) is stored as provenance.
 * The output is published atomically: on failure nothing is written at cfg->out and an existing
 * file there is kept. */
SCL_NODISCARD scl_err run_features(const run_features_cfg *cfg, const char *config_text);

#endif /* SAFECL_FEATURES_H */
