/* bench_train.h: `safecl bench train`, the throughput of one training step.
 *
 *   safecl bench train --arch A --pet adapter|ssf|vpt|vpt_shallow|prefix --batch B [--iters N]
 *                      [--warmup W] [--threads T] [--seed S] [--classes K]
 *   safecl bench train --arch A --method NAME [--batch B] [--config FILE] [--session-classes K0]
 *                      [--eval-batch E] [common options] [key=value ...]
 *
 * --pet: one step is what SAFE's slow learner does per batch without its second pass: the
 * trainer's forward through the frozen ViT with the PET modules (adapter dropout on), a cosine
 * head with cross-entropy, the backward to the PET parameters and an SGD step on PET and head.
 * --method: one step is the registered method's train_step in session 1 (cmd_bench_method.c),
 * created and begun as a trial does. Weights, images and labels are random. Prints one line of
 * key=value pairs (img_per_s, best_img_per_s, peak_rss_mb, ...) that tests/bench/train.sh and
 * tests/bench/prompt.sh parse. */
#ifndef SAFECL_BENCH_TRAIN_H
#define SAFECL_BENCH_TRAIN_H

/* The options of `safecl bench train --method`. */
typedef struct bench_method_args {
  const char *arch, *method;
  const char *config; /* NULL: configs/methods/<method>.cfg if readable, else the defaults */
  long batch, iters, warmup, threads, seed, classes;
  long session_classes; /* classes of session 1: [0, session_classes) */
  long eval_batch;      /* images the backbone is created for; 0: the largest shard */
  int n_overrides;
  char **overrides; /* trial keys, "key=value" (run/trial_config.c) */
} bench_method_args;

/* argv[0] = "bench", argv[1] = "train"; returns the exit status (0 ok, 1 failure, 2 usage). */
int cmd_bench_train(int argc, char **argv);
/* The --method benchmark on MPI_COMM_WORLD; returns 0 ok, 1 failure. */
int bench_train_method(const bench_method_args *a);

#endif /* SAFECL_BENCH_TRAIN_H */
