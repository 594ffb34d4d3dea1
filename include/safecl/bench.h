/* bench.h: `safecl bench`, micro-benchmarks of the compute kernels.
 *
 *   safecl bench forward --arch A --batch B [--iters N] [--warmup W] [--threads T]
 *                        [--seed S] [--full-last-block]
 *
 * times the frozen ViT forward on random weights and images and prints one summary line of
 * key=value pairs (arch, batch, threads, img_per_s, gflop_per_s, peak_rss_mb, ...) that
 * tests/bench/forward.sh parses. The same prototype is in apps.h, the dispatcher's header. */
#ifndef SAFECL_BENCH_H
#define SAFECL_BENCH_H

/* argv[0] = "bench"; returns the exit status (0 ok, 1 failure, 2 usage error). */
int cmd_bench(int argc, char **argv);

#endif /* SAFECL_BENCH_H */
