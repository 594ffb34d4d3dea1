/* report.c: report_run, the whole `safecl report`: scan, load published numbers, build the
 * model, print one format, draw the plots.
 *
 * Everything is read before anything is printed, so an error (a trial file of another schema
 * version, a malformed published CSV, an unknown baseline) leaves no half table on stdout. The
 * report is a pure function of the files: rerunning it on the same directories prints the same
 * bytes. */
#include <string.h>

#include "report_internal.h"

scl_err report_run(const report_opts *opts, FILE *out) {
  SCL_CHECK(opts && opts->n_dirs >= 1, SCL_ERR_ARG, "report: no directory given");
  report_data d;
  memset(&d, 0, sizeof d);
  d.opts = opts;
  scl_err err = SCL_OK;
  for (int i = 0; i < opts->n_dirs; i++)
    SCL_CALL_GOTO(err, report_scan_dir(&d, opts->dirs[i]), done);
  SCL_CHECK_GOTO(err, done, d.n_trials, SCL_ERR_ARG,
                 "report: no trials found (looked for DIR/trial.h5 and DIR/trials/*/)");
  if (opts->published) SCL_CALL_GOTO(err, report_published_load(&d, opts->published), done);
  SCL_CALL_GOTO(err, report_model_build(&d), done);
  if (opts->format == REPORT_CSV)
    SCL_CALL_GOTO(err, report_write_csv(&d, out), done);
  else
    SCL_CALL_GOTO(err, report_write_table(&d, out), done);
  SCL_CHECK_GOTO(err, done, fflush(out) == 0 && !ferror(out), SCL_ERR_IO,
                 "report: write error on the output");
  if (opts->plots_dir) SCL_CALL_GOTO(err, report_write_plots(&d, opts->plots_dir), done);
done:
  report_data_free(&d);
  return err;
}
