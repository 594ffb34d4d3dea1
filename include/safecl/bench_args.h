/* bench_args.h: the options every `safecl bench` benchmark shares (--arch, --batch, --iters,
 * --warmup, --threads, --seed), parsed in one place. */
#ifndef SAFECL_BENCH_ARGS_H
#define SAFECL_BENCH_ARGS_H

/* Where a benchmark keeps the shared options. */
typedef struct bench_common_opts {
  const char **arch;
  long *batch, *iters, *warmup, *threads, *seed;
} bench_common_opts;

/* *out = integer s >= lo; else prints "safecl bench CMD: KEY needs ..." and returns 0. */
int bench_parse_long(const char *cmd, const char *key, const char *s, long lo, long *out);
/* 1 if `key` is a shared option (its value `val` parsed into o, *ok = 0 on a bad value), 0 if
 * not. --arch needs a value; the counts need >= 1 except --warmup and --seed (>= 0). */
int bench_common_option(const char *cmd, const char *key, const char *val,
                        const bench_common_opts *o, int *ok);

#endif /* SAFECL_BENCH_ARGS_H */
