/* h5_script.h: a valid HDF5 file built from a text script, for the targets whose parser reads
 * HDF5 (packed datasets, trial.h5).
 *
 * Fuzzing the HDF5 library's own file parser is not this project's business (its crashes
 * cannot be fixed here), so those targets fuzz what safecl reads from a well-formed file: which
 * groups, datasets and attributes exist, their types, shapes and values. One command per line:
 *   group PATH
 *   attr OBJ KEY i64 INTEGER | attr OBJ KEY f64 NUMBER | attr OBJ KEY str TEXT...
 *   i32 PATH V...        i64 PATH V...        f64 PATH V...        f64x2 PATH ROWS COLS V...
 *   str PATH S...        blob PATH HEX
 * OBJ "/" is the root; missing groups are created. TEXT is the rest of the line and S a word,
 * both with the escapes \n \t \s (space) \\, and HEX the bytes of a blob (an encoded image).
 * Unknown commands and malformed lines are skipped, so every input builds some file. At most
 * H5_SCRIPT_MAX_VALUES values per dataset. */
#ifndef SAFECL_H5_SCRIPT_H
#define SAFECL_H5_SCRIPT_H

#include <stddef.h>

#define H5_SCRIPT_MAX_VALUES 4096

/* Builds the file at path from the script (size bytes, need not be NUL-terminated). Returns 0
 * when the file was written, -1 otherwise (the error state is cleared either way). */
int h5_script_build(const char *path, const char *script, size_t size);

#endif /* SAFECL_H5_SCRIPT_H */
