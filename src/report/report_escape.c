/* report_escape.c: quoting a string for one cell of a CSV, LaTeX, Markdown or XML output.
 *
 * Names in a report come from files (method, dataset and predictor names, error messages,
 * published sources), so every string a renderer prints goes through one of these. They write
 * character by character to the stream; no allocation, so they cannot fail. Markdown escaping
 * is the conservative set that GitHub's renderer treats specially inside a table cell; line
 * breaks become spaces because a table row is one line. */
#include <string.h>

#include "report_internal.h"

void report_put_csv(FILE *f, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

void report_put_latex(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        fputc('\\', f);
        fputc(*s, f);
        break;
      case '~':
        fputs("\\textasciitilde{}", f);
        break;
      case '^':
        fputs("\\textasciicircum{}", f);
        break;
      case '\\':
        fputs("\\textbackslash{}", f);
        break;
      case '\n':
      case '\r':
        fputc(' ', f);
        break;
      default:
        fputc(*s, f);
    }
  }
}

void report_put_md(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '\n' || *s == '\r') {
      fputc(' ', f);
      continue;
    }
    if (strchr("|\\*_`[]<>", *s)) fputc('\\', f);
    fputc(*s, f);
  }
}

void report_put_xml(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '&':
        fputs("&amp;", f);
        break;
      case '<':
        fputs("&lt;", f);
        break;
      case '>':
        fputs("&gt;", f);
        break;
      case '"':
        fputs("&quot;", f);
        break;
      case '\'':
        fputs("&apos;", f);
        break;
      default: /* control characters are not allowed in XML 1.0 */
        fputc((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' ? ' ' : *s, f);
    }
  }
}
