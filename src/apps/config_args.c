/* config_args.c: the command line of a command that takes configs (train, plan, features): config
 * files and key=value overrides in any order, and the command's flags anywhere on the line.
 *
 * Files and overrides keep their order, since they apply left to right (cfg_load_args); a flag
 * may come before, between or after them. An argument starting with "--" that is not one of the
 * command's flags is a usage error rather than a file name; "--" alone ends the flags. */
#include <stdio.h>
#include <string.h>

#include "safecl/apps.h"

int apps_config_args(const char *command, int argc, char **argv, const char *const *flags,
                     int n_flags, int *found, char **rest, int *n_rest) {
  *n_rest = 0;
  for (int f = 0; f < n_flags; f++) found[f] = 0;
  int flags_done = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!flags_done && !strcmp(a, "--")) {
      flags_done = 1;
      continue;
    }
    if (!flags_done && (!strncmp(a, "--", 2) || !strcmp(a, "-h"))) {
      int f = 0;
      while (f < n_flags && strcmp(a, flags[f]) &&
             !(!strcmp(a, "-h") && !strcmp(flags[f], "--help")))
        f++;
      if (f == n_flags) {
        fprintf(stderr, "safecl %s: unknown option %s (safecl %s --help)\n", command, a, command);
        return 2;
      }
      found[f] = 1;
      continue;
    }
    rest[(*n_rest)++] = argv[i];
  }
  return 0;
}
