/* fuzz.h: what every fuzz target of tests/fuzz/ shares (docs/conventions.md 23).
 *
 * A target defines LLVMFuzzerTestOneInput only. Built with clang and -fsanitize=fuzzer
 * (-DSAFECL_FUZZ=ON) libFuzzer drives it; in every other build fuzz_main.c drives it over the
 * files of its seed corpus, which is the regression test of the default suite. Parsers that
 * take a path get the input written to a file in a private directory of this process
 * (fuzz_path), which is removed at exit. */
#ifndef SAFECL_FUZZ_H
#define SAFECL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* dir/name inside this process's private directory; the result is static per call site only
 * until the next call with the same slot (0 .. FUZZ_SLOTS-1). */
#define FUZZ_SLOTS 4
const char *fuzz_path(int slot, const char *name);
/* Writes size bytes to path (creating or truncating it); 0 on success. */
int fuzz_write(const char *path, const void *data, size_t size);
/* Creates the directory path (and its parents inside the private directory). */
int fuzz_mkdir(const char *path);
/* Forgets the error an input raised, so every input starts clean (what tests do between
 * cases); prints it first when FUZZ_VERBOSE is set. */
void fuzz_clear(void);

#endif /* SAFECL_FUZZ_H */
