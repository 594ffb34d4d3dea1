/* bench_args.h: the options every `safecl bench` benchmark shares (--arch, --batch, --iters,
 * --warmup, --threads, --seed), parsed in one place. */
#ifndef SAFECL_BENCH_ARGS_H
#define SAFECL_BENCH_ARGS_H

#include <stdio.h>

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

/* A benchmark's own options: returns 1 if it knows `key` (setting *takes_value when it used
 * `val`, *ok = 0 on a bad value), 0 if not. */
typedef int (*bench_extra_option)(void *ctx, const char *key, const char *val, int *takes_value,
                                  int *ok);

/* Parses argv[2..] of `safecl bench CMD`: --help/-h (usage to stdout, returns 1), the shared
 * options, then `extra` (may be NULL); anything else is a usage error (message and usage to
 * stderr, returns 2). Returns 0 when every argument was taken. */
int bench_parse(int argc, char **argv, const char *cmd, const bench_common_opts *common,
                bench_extra_option extra, void *ctx, void (*usage)(FILE *f));

#endif /* SAFECL_BENCH_ARGS_H */
