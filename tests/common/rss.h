/* rss.h: the process's current resident set in MiB (/proc/self/statm, 4 KiB pages; 0 when it
 * cannot be read), for the bench tools that measure what an allocation adds. */
#ifndef SAFECL_TESTS_COMMON_RSS_H
#define SAFECL_TESTS_COMMON_RSS_H

#include <stdio.h>

static inline double rss_mb(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
  if (f) fclose(f);
  return (double)rss * 4096.0 / 1048576.0;
}

#endif /* SAFECL_TESTS_COMMON_RSS_H */
