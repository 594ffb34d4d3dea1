/* fuzz_ledger.c: ledger replay (src/orch/ledger.c, state.c) on arbitrary bytes.
 *
 * Every record carries a CRC-32, so random bytes almost never get past it. The first byte of
 * the input chooses: even, the rest is a ledger file as found on disk; odd, each line of the
 * rest gets a correct CRC written over its first 8 bytes before the file is written, so the
 * field parser and the state machine of replay see hostile records that pass the check. The
 * file is replayed as RUN_DIR/ledger.fuzz.log with orch_state_load (what `safecl status` and a
 * sweep start do), and each line also goes through orch_record_parse and back through
 * orch_record_format. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "safecl/ledger.h"
#include "safecl/orch.h"

/* Rewrites the first 8 bytes of every line of at least 10 bytes with the CRC of the bytes after
 * byte 9 (the "<crc> " prefix), as orch_record_format computes it. */
static void fix_crcs(char *text, size_t len) {
  for (size_t a = 0; a < len;) {
    char *nl = memchr(text + a, '\n', len - a);
    size_t b = nl ? (size_t)(nl - text) : len;
    if (b - a >= 10) {
      char crc[9];
      snprintf(crc, sizeof crc, "%08x", orch_crc32(text + a + 9, b - a - 9));
      memcpy(text + a, crc, 8);
      text[a + 8] = ' ';
    }
    a = b + 1;
  }
}

static void parse_lines(const char *text, size_t len) {
  static orch_record r;
  static char line[3 * ORCH_LEDGER_TEXT_MAX + 512];
  for (size_t a = 0; a < len;) {
    const char *nl = memchr(text + a, '\n', len - a);
    size_t b = nl ? (size_t)(nl - text) : len;
    if (orch_record_parse(text + a, b - a, &r) == 0) {
      size_t n = orch_record_format(&r, line, sizeof line);
      orch_record back;
      if (n == 0 || orch_record_parse(line, n - 1, &back) != 0)
        abort(); /* a valid record must format and parse back */
    }
    a = b + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t len = size - 1;
  char *text = malloc(len + 1);
  if (!text) return 0;
  memcpy(text, data + 1, len);
  text[len] = '\0';
  if (data[0] & 1) fix_crcs(text, len);
  parse_lines(text, len);
  const char *run = fuzz_path(0, "run");
  fuzz_mkdir(run);
  if (fuzz_write(fuzz_path(1, "run/ledger.fuzz.log"), text, len) == 0) {
    orch_state *s = NULL;
    if (orch_state_load(run, &s) == SCL_OK) orch_state_destroy(&s);
  }
  free(text);
  fuzz_clear();
  return 0;
}
