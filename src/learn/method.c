/* method.c: the registry of continual-learning methods, looked up by config name.
 *
 * The registry is the one list of the methods safecl runs: one row per method, pointing at the
 * learn_method_ops its own file defines. Everything else that names methods reads it: the choices
 * of method.name (learn_method_names), the sweep planner's rough guess (cost_factor) and the
 * report's display names, families and order (label, category, row order within a family). */
#include <stdio.h>
#include <string.h>

#include "safecl/method.h"

extern const learn_method_ops learn_simplecil_ops;
extern const learn_method_ops learn_ranpac_ops;
extern const learn_method_ops learn_safe_ops;
extern const learn_method_ops learn_aper_ops;
extern const learn_method_ops learn_l2p_ops;
extern const learn_method_ops learn_dualprompt_ops;
extern const learn_method_ops learn_coda_prompt_ops;
extern const learn_method_ops learn_slca_ops;
extern const learn_method_ops learn_ease_ops;
extern const learn_method_ops learn_lae_ops;

/* Display order within a family is the order of the SAFE paper's comparison tables. */
static const learn_method_ops *const registry[] = {
    &learn_simplecil_ops, &learn_aper_ops,       &learn_ranpac_ops,      &learn_safe_ops,
    &learn_l2p_ops,       &learn_dualprompt_ops, &learn_coda_prompt_ops, &learn_slca_ops,
    &learn_ease_ops,      &learn_lae_ops,
};
enum { N_METHODS = (int)(sizeof registry / sizeof registry[0]) };

int learn_method_count(void) { return N_METHODS; }

const learn_method_ops *learn_method_at(int i) {
  return i >= 0 && i < N_METHODS ? registry[i] : NULL;
}

const learn_method_ops *learn_method_find(const char *name) {
  for (int i = 0; i < N_METHODS; i++)
    if (!strcmp(registry[i]->name, name)) return registry[i];
  return NULL;
}

const char *learn_method_names(void) {
  static char names[64 * N_METHODS];
  if (names[0]) return names;
  size_t n = 0;
  for (int i = 0; i < N_METHODS && n < sizeof names; i++)
    n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? "|" : "", registry[i]->name);
  return names;
}
