/* main.c: the `safecl` command: dispatches argv to a subcommand. Placeholder until the
 * subcommands land. */
#include <stdio.h>
#include <string.h>

#include "safecl/core.h"

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help")) {
    printf("usage: safecl <command> [args]\n");
    return argc < 2;
  }
  fprintf(stderr, "safecl: unknown command '%s'\n", argv[1]);
  return 2;
}
