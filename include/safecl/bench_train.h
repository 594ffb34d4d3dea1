/* bench_train.h: `safecl bench train`, the throughput of one PET training step.
 *
 *   safecl bench train --arch A --pet adapter|ssf|vpt|vpt_shallow|prefix --batch B [--iters N]
 *                      [--warmup W] [--threads T] [--seed S] [--classes K]
 *
 * One step is what SAFE's slow learner does per batch without its second pass: the trainer's
 * forward through the frozen ViT with the PET modules (adapter dropout on), a cosine head with
 * cross-entropy, the backward to the PET parameters and an SGD step on PET and head. Weights,
 * images and labels are random. Prints one line of key=value pairs (img_per_s, best_img_per_s,
 * fwd_s, bwd_s, gflop_per_s, peak_rss_mb, ...) that tests/bench/train.sh parses. */
#ifndef SAFECL_BENCH_TRAIN_H
#define SAFECL_BENCH_TRAIN_H

/* argv[0] = "bench", argv[1] = "train"; returns the exit status (0 ok, 1 failure, 2 usage). */
int cmd_bench_train(int argc, char **argv);

#endif /* SAFECL_BENCH_TRAIN_H */
