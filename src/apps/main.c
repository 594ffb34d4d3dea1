/* main.c: the `safecl` command: prologue (logging), dispatch to one subcommand, exit status.
 * Argument parsing belongs to each subcommand (src/apps/cmd_*.c); nothing here knows keys. */
#include <stdio.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/core.h"

typedef struct subcommand {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"features", cmd_features, "extract ViT CLS features of a dataset into HDF5"},
    {"train", cmd_train, "run one continual-learning trial (session loop, metrics, trial.h5)"},
    {"plan", cmd_plan, "a trial's work per session and its estimated time on this machine"},
    {"pack", cmd_pack, "pack a class-folder dataset into one HDF5 file"},
    {"bench", cmd_bench, "benchmarks: `safecl bench forward --arch A --batch B`"},
    {"report", cmd_report, "tables (md, latex, csv) and SVG curves from run directories"},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
  fprintf(f, "safecl %s: continual learning with pre-trained Vision Transformers\n\n",
          scl_version());
  fprintf(f, "usage: safecl <command> [args]   (safecl <command> --help for details)\n\n");
  for (int i = 0; i < n_commands; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("safecl %s\n", scl_version());
    return 0;
  }
  for (int i = 0; i < n_commands; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "safecl: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
