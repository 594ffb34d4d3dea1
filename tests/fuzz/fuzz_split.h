/* fuzz_split.h: one input as a file plus command-line arguments.
 *
 * Text formats (config and sweep files) cannot hold a NUL byte, so a NUL splits an input: the
 * bytes before it are the file, and each line after it is one command-line override. An input
 * without a NUL is a file alone. */
#ifndef SAFECL_FUZZ_SPLIT_H
#define SAFECL_FUZZ_SPLIT_H

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_ARGS 16

typedef struct fuzz_split {
  size_t file_len;
  char *args_text; /* owned: the part after the NUL, NUL-terminated, lines cut in place */
  char *args[FUZZ_MAX_ARGS];
  int n_args;
} fuzz_split;

/* Returns 0 on success, -1 when out of memory. */
static inline int fuzz_split_input(const uint8_t *data, size_t size, fuzz_split *s) {
  memset(s, 0, sizeof *s);
  const uint8_t *nul = memchr(data, 0, size);
  s->file_len = nul ? (size_t)(nul - data) : size;
  if (!nul) return 0;
  size_t rest = size - s->file_len - 1;
  if (!(s->args_text = malloc(rest + 1))) return -1;
  memcpy(s->args_text, nul + 1, rest);
  s->args_text[rest] = '\0';
  for (char *p = s->args_text; *p && s->n_args < FUZZ_MAX_ARGS;) {
    s->args[s->n_args++] = p;
    char *nl = strchr(p, '\n');
    if (!nl) break;
    *nl = '\0';
    p = nl + 1;
  }
  return 0;
}

static inline void fuzz_split_free(fuzz_split *s) { free(s->args_text); }

#endif /* SAFECL_FUZZ_SPLIT_H */
