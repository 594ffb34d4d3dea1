/* trial_config.c: the key table of a trial (`safecl train --help`). Dataset files in
 * configs/datasets/ set dataset.*, method files in configs/methods/ set method.* and train.*. */
#include <stddef.h>

#include "safecl/trial.h"

#define K(name, type, field, lo, hi, def, choices, help) \
  { name, type, offsetof(run_trial_cfg, field), lo, hi, def, choices, help, 0 }
#define KX(name, type, field, lo, hi, def, choices, help) \
  { name, type, offsetof(run_trial_cfg, field), lo, hi, def, choices, help, 1 }

static const cfg_key trial_keys[] = {
    K("dataset.name", CFG_STRING, dataset_name, 0, 0, "synthetic", NULL,
      "benchmark name used in reports (cifar100, imagenet-r, ...)"),
    K("dataset.format", CFG_STRING, format, 0, 0, "synthetic",
      "folder|cifar100|domainnet|synthetic", "dataset reader"),
    KX("dataset.root", CFG_STRING, root, 0, 0, "", NULL,
       "folder: ROOT/{train,test}/<class>/<image>; cifar100: folder with cifar-100-binary/"),
    K("dataset.domains", CFG_STRING, domains, 0, 0,
      "real,quickdraw,painting,sketch,infograph,clipart", NULL,
      "domainnet: domain-incremental sessions, one domain each, in this order"),
    K("dataset.classes", CFG_INT, classes, 0, 100000, "0", NULL,
      "domainnet: number of classes (345); 0 = 1 + the largest label in the lists"),
    K("dataset.init_cls", CFG_INT, init_cls, 1, 100000, "10", NULL, "classes of session 1"),
    K("dataset.increment", CFG_INT, increment, 1, 100000, "10", NULL,
      "classes of each later session"),
    K("dataset.shuffle", CFG_BOOL, shuffle, 0, 1, "true", NULL,
      "class order from np.random.permutation (false: folder/label order, as VTAB)"),
    K("dataset.order_seed", CFG_INT, order_seed, 0, 4294967295.0, "1993", NULL,
      "seed of the class order (the toolboxes use 1993)"),
    K("dataset.resize", CFG_INT, resize, 0, 8192, "224", NULL,
      "test transform: Resize(shorter side, bicubic); 256 for folder datasets, 224 for CIFAR"),
    K("dataset.crop", CFG_INT, crop, 8, 8192, "224", NULL, "test transform: CenterCrop"),
    K("dataset.synthetic.classes", CFG_INT, syn_classes, 1, 100000, "20", NULL,
      "synthetic: number of classes"),
    K("dataset.synthetic.train_per_class", CFG_INT, syn_train_per_class, 1, 1000000, "20", NULL,
      "synthetic: training images per class"),
    K("dataset.synthetic.test_per_class", CFG_INT, syn_test_per_class, 1, 1000000, "10", NULL,
      "synthetic: test images per class"),
    K("dataset.synthetic.size", CFG_INT, syn_size, 8, 4096, "224", NULL, "synthetic: image side"),
    K("dataset.synthetic.seed", CFG_INT, syn_seed, 0, 4294967295.0, "1993", NULL,
      "synthetic: generator seed"),
    K("dataset.synthetic.difficulty", CFG_FLOAT, syn_difficulty, 0, 0.99, "0.0", NULL,
      "synthetic: blend of every image toward another class (0 = easy, 0.9 = heavily overlapping)"),
    K("backbone.arch", CFG_STRING, arch, 0, 0, "vit_base_patch16_224",
      "vit_tiny_patch16_224|vit_small_patch16_224|vit_base_patch16_224|vit_large_patch16_224",
      "ViT preset"),
    K("backbone.weights", CFG_STRING, weights, 0, 0, "", NULL,
      ".safetensors in timm or Hugging Face naming; empty: random weights from backbone.seed"),
    K("backbone.seed", CFG_INT, backbone_seed, 0, 4294967295.0, "1993", NULL,
      "seed of the random weights when backbone.weights is empty"),
    K("method.name", CFG_STRING, method.name, 0, 0, "simplecil", "simplecil|ranpac",
      "continual learner"),
    K("method.rp.dim", CFG_INT, method.rp_dim, 1, 1000000, "10000", NULL,
      "random-projection width M of RanPAC/SAFE classifiers"),
    K("method.ridge.lo_exp", CFG_INT, method.ridge_lo_exp, -30, 30, "3", NULL,
      "smallest ridge candidate 10^lo (SAFE 3; RanPAC -8)"),
    K("method.ridge.hi_exp", CFG_INT, method.ridge_hi_exp, -30, 30, "8", NULL,
      "largest ridge candidate 10^hi (SAFE and RanPAC 8)"),
    K("method.ridge.fit_fraction", CFG_FLOAT, method.ridge_fit_fraction, 0.05, 0.95, "0.8", NULL,
      "share of a session's (shuffled) training features that fits each candidate; the rest scores "
      "it"),
    KX("eval.batch", CFG_INT, eval_batch, 1, 4096, "32", NULL,
       "images per forward pass when extracting features"),
    K("eval.val_fraction", CFG_FLOAT, val_fraction, 0, 0.5, "0.0", NULL,
      "share of each session-1 class's training images held out as the validation split that "
      "hyperparameters are chosen on (never the test set); 0 = none"),
    KX("threads", CFG_INT, threads, 0, 1024, "0", NULL,
       "compute threads; 0 = OPENBLAS_NUM_THREADS or the core count"),
    K("seed", CFG_INT, seed, 0, 4294967295.0, "1993", NULL,
      "trial seed: keys every counter-based random stream of the trial"),
    KX("run.dir", CFG_STRING, run_dir, 0, 0, "run/trial", NULL,
       "directory of trial.h5 and checkpoints"),
};
#undef K
#undef KX

const cfg_schema run_trial_schema = {"train", trial_keys,
                                     (int)(sizeof trial_keys / sizeof trial_keys[0])};
