/* bench_train_main.c: runs `safecl bench train` without the dispatcher, so that the benchmark
 * is exercised by ctest before `safecl bench` routes to it: argv is passed through unchanged
 * (argv[1] must be "train"). */
#include "safecl/bench_train.h"

int main(int argc, char **argv) { return cmd_bench_train(argc, argv); }
