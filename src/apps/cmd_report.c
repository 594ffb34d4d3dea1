/* cmd_report.c: `safecl report DIR [DIR ...] [options]`: argv to report_run.
 *
 * Options take their value as the next argument or after '='. The published numbers default to
 * the shipped analysis/published.csv, found from the executable's path whatever the working
 * directory (report_published_find), so the common call needs no flag; --no-published turns them
 * off. With --out the report is built in
 * memory and published atomically, so a failed report never truncates an earlier one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safecl/apps.h"
#include "safecl/publish.h"
#include "safecl/report.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: safecl report DIR [DIR ...] [--format md|latex|csv] [--forgetting]\n"
          "                     [--baseline METHOD] [--published FILE | --no-published]\n"
          "                     [--plots OUTDIR] [--out FILE]\n\n"
          "Tables of final and average incremental accuracy (mean +- std over seeds, n) per\n"
          "dataset x method from finished trials: DIR is a sweep's run directory (DIR/trials/*/)\n"
          "or a `safecl train` run.dir (DIR/trial.h5). Failed, unfinished and missing trials are\n"
          "counted in the cells and listed in the notes (conventions: analysis/SCHEMA.md).\n\n"
          "  --format F        md (default), latex or csv (one long table for scripts)\n"
          "  --forgetting      add forgetting columns\n"
          "  --baseline M      paired difference of final accuracy vs method M over shared seeds,\n"
          "                    with a 95%% Student-t interval\n"
          "  --published FILE  published numbers to show beside ours, marked as reported\n"
          "                    (default: the shipped analysis/published.csv, found beside the\n"
          "                    executable, in the install prefix's share/safecl or the source\n"
          "                    tree; $SAFECL_PUBLISHED overrides)\n"
          "  --no-published    show none\n"
          "  --plots OUTDIR    write OUTDIR/<dataset>.svg: accuracy after each session\n"
          "  --out FILE        write the report to FILE (atomically) instead of stdout\n");
}

/* The value of option `name` at argv[*i] ("--name v" or "--name=v"), advancing *i; NULL if
 * argv[*i] is not that option. *missing is set when the value is absent. */
static const char *option(int argc, char **argv, int *i, const char *name, int *missing) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n)) return NULL;
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (argv[*i][n] != '\0') return NULL;
  if (*i + 1 >= argc) {
    *missing = 1;
    return NULL;
  }
  return argv[++*i];
}

static int parse_format(const char *s, report_format *fmt) {
  if (!strcmp(s, "md") || !strcmp(s, "markdown"))
    *fmt = REPORT_MD;
  else if (!strcmp(s, "latex") || !strcmp(s, "tex"))
    *fmt = REPORT_LATEX;
  else if (!strcmp(s, "csv"))
    *fmt = REPORT_CSV;
  else
    return 0;
  return 1;
}

static int run(report_opts *o, const char *out_path) {
  scl_err err = SCL_OK;
  if (!out_path) {
    err = report_run(o, stdout);
  } else {
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) {
      fprintf(stderr, "safecl report: out of memory\n");
      return 1;
    }
    err = report_run(o, mem);
    if (fclose(mem) != 0 && !err) err = SCL_ERROR(SCL_ERR_NOMEM, "report: output buffer");
    if (!err) err = io_write_file_atomic(out_path, buf, len);
    free(buf);
  }
  if (err) scl_log_error_traceback();
  return err ? 1 : 0;
}

int cmd_report(int argc, char **argv) {
  report_opts o = {0};
  const char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
  const char *out_path = NULL, *v = NULL;
  char found[8192];
  int no_published = 0, missing = 0, status = 2;
  if (!dirs) return 1;
  o.dirs = dirs;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      status = 0;
      goto done;
    } else if ((v = option(argc, argv, &i, "--format", &missing))) {
      if (!parse_format(v, &o.format)) {
        fprintf(stderr, "safecl report: --format %s: expected md, latex or csv\n", v);
        goto done;
      }
    } else if ((v = option(argc, argv, &i, "--baseline", &missing))) {
      o.baseline = v;
    } else if ((v = option(argc, argv, &i, "--published", &missing))) {
      o.published = v;
    } else if ((v = option(argc, argv, &i, "--plots", &missing))) {
      o.plots_dir = v;
    } else if ((v = option(argc, argv, &i, "--out", &missing))) {
      out_path = v;
    } else if (!strcmp(argv[i], "--forgetting")) {
      o.forgetting = 1;
    } else if (!strcmp(argv[i], "--no-published")) {
      no_published = 1;
    } else if (missing || argv[i][0] == '-') {
      fprintf(stderr, "safecl report: %s %s\n\n", argv[i],
              missing ? "needs a value" : "is not an option");
      usage(stderr);
      goto done;
    } else {
      dirs[o.n_dirs++] = argv[i];
    }
  }
  if (!o.n_dirs) {
    usage(stderr);
    goto done;
  }
  if (no_published)
    o.published = NULL;
  else if (!o.published && report_published_find(found, sizeof found))
    o.published = found;
  else if (!o.published)
    fprintf(stderr,
            "safecl report: no published numbers shown: analysis/published.csv not found (looked "
            "at %s); give --published FILE or set SAFECL_PUBLISHED\n",
            found);
  status = run(&o, out_path);
done:
  free(dirs);
  return status;
}
