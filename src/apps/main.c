/* main.c: the `safecl` command: prologue (logging), dispatch to one subcommand, exit status.
 * Argument parsing belongs to each subcommand (src/apps/cmd_*.c); nothing here knows keys. */
#include <stdio.h>
#include <string.h>

#include "safecl/apps.h"
#include "safecl/core.h"
#include "safecl/dist.h"

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
    {"sweep", cmd_sweep, "run a sweep under mpirun/srun: coordinator + worker groups"},
    {"status", cmd_status, "a sweep's progress: trials by state, groups, throughput, ETA"},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
  fprintf(f, "safecl %s: continual learning with pre-trained Vision Transformers\n\n",
          scl_version());
  fprintf(f, "usage: safecl <command> [args]   (safecl <command> --help for details)\n\n");
  for (int i = 0; i < n_commands; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

/* The commands main runs between MPI_Init_thread and MPI_Finalize. Only commands that
 * communicate are listed: initialising MPI outside mpirun starts a singleton runtime (~0.3 s),
 * which `status`, `report` and friends have no use for. */
static const char *const mpi_commands[] = {"sweep", "train", "bench"};

/* `safecl train` only prints with these flags (anywhere on its line), so it runs without MPI:
 * 0.05 s instead of 0.7 s, which matters to scripts that print hundreds of configs. */
static const char *const train_print_flags[] = {"--help", "-h", "--print-config",
                                                "--print-trial-id"};

static int needs_mpi(int argc, char **argv) {
  int listed = 0;
  for (size_t i = 0; i < sizeof mpi_commands / sizeof mpi_commands[0]; i++)
    listed |= !strcmp(argv[1], mpi_commands[i]);
  if (!listed || strcmp(argv[1], "train")) return listed;
  for (int a = 2; a < argc && strcmp(argv[a], "--"); a++)
    for (size_t f = 0; f < sizeof train_print_flags / sizeof train_print_flags[0]; f++)
      if (!strcmp(argv[a], train_print_flags[f])) return 0;
  return 1;
}

static int run_with_mpi(const subcommand *c, int argc, char **argv) {
  if (dist_init(&argc, &argv) != SCL_OK) {
    scl_log_error_traceback();
    return 1;
  }
  int status = c->run(argc - 1, argv + 1);
  if (dist_finalize() != SCL_OK) {
    scl_log_error_traceback();
    if (!status) status = 1;
  }
  return status;
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
    if (needs_mpi(argc, argv) && !strcmp(argv[1], commands[i].name))
      return run_with_mpi(&commands[i], argc, argv);
  for (int i = 0; i < n_commands; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "safecl: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
