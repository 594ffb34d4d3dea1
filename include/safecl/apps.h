/* apps.h: the subcommands of the `safecl` executable. Each takes argv with argv[0] = its own
 * name, parses only its arguments, and returns the process exit status (0 ok, 1 failure,
 * 2 usage error). */
#ifndef SAFECL_APPS_H
#define SAFECL_APPS_H

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
