/* method.c: the registry of continual-learning methods, looked up by config name. */
#include <string.h>

#include "safecl/method.h"

extern const learn_method_ops learn_simplecil_ops;
extern const learn_method_ops learn_ranpac_ops;
extern const learn_method_ops learn_safe_ops;
extern const learn_method_ops learn_aper_ops;

static const learn_method_ops *const registry[] = {&learn_simplecil_ops, &learn_ranpac_ops,
                                                   &learn_aper_ops, &learn_safe_ops};

const learn_method_ops *learn_method_find(const char *name) {
  for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
    if (!strcmp(registry[i]->name, name)) return registry[i];
  return NULL;
}

const char *learn_method_names(void) { return "simplecil|ranpac|aper|safe"; }
