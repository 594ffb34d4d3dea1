/* apps.h: the subcommands of the `safecl` executable. Each takes argv with argv[0] = its own
 * name, parses only its arguments, and returns the process exit status (0 ok, 1 failure,
 * 2 usage error). */
#ifndef SAFECL_APPS_H
#define SAFECL_APPS_H

/* The arguments of a command that takes configs: argv[1..argc) holds config files, key=value
 * overrides and flags in any order. found[f] is set to 1 for each of the n_flags `flags` given
 * ("-h" counts as "--help"); the files and overrides go to rest (argc entries, caller's) in their
 * order, *n_rest of them. Returns 0, or 2 after printing a usage error for an unknown "--" option.
 * "--" alone ends the flags. */
int apps_config_args(const char *command, int argc, char **argv, const char *const *flags,
                     int n_flags, int *found, char **rest, int *n_rest);

int cmd_features(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_report(int argc, char **argv);

/* Runs a sweep under mpirun/srun (MPI initialised by main); exit 75 = stopped, requeue. */
int cmd_sweep(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif /* SAFECL_APPS_H */
