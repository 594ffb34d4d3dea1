/* bench_args.c: the shared options of the `safecl bench` benchmarks (bench_args.h). */
#include "safecl/bench_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bench_parse_long(const char *cmd, const char *key, const char *s, long lo, long *out) {
  char *end = NULL;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || *end != '\0' || v < lo) {
    fprintf(stderr, "safecl bench %s: %s needs an integer >= %ld, got '%s'\n", cmd, key, lo,
            s ? s : "");
    return 0;
  }
  *out = v;
  return 1;
}

int bench_common_option(const char *cmd, const char *key, const char *val,
                        const bench_common_opts *o, int *ok) {
  static const struct {
    const char *name;
    long lo;
  } counts[] = {{"--batch", 1}, {"--iters", 1}, {"--warmup", 0}, {"--threads", 1}, {"--seed", 0}};
  long *slots[] = {o->batch, o->iters, o->warmup, o->threads, o->seed};
  if (!strcmp(key, "--arch") && val) {
    *o->arch = val;
    *ok = 1;
    return 1;
  }
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
    if (!strcmp(key, counts[i].name)) {
      *ok = bench_parse_long(cmd, key, val, counts[i].lo, slots[i]);
      return 1;
    }
  return 0;
}

int bench_parse(int argc, char **argv, const char *cmd, const bench_common_opts *common,
                bench_extra_option extra, void *ctx, void (*usage)(FILE *f)) {
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 1, takes_value = 1;
    if (!strcmp(k, "--help") || !strcmp(k, "-h")) {
      usage(stdout);
      return 1;
    }
    if (!bench_common_option(cmd, k, v, common, &ok) &&
        !(extra && extra(ctx, k, v, &takes_value, &ok))) {
      fprintf(stderr, "safecl bench %s: unknown or incomplete argument '%s'\n\n", cmd, k);
      usage(stderr);
      return 2;
    }
    if (!ok) return 2;
    i += takes_value;
  }
  return 0;
}
