/* vit_config.c: ViT shapes: the timm presets, validation, and the counts derived from a shape
 * (tokens, parameters, FLOPs).
 *
 * Presets are a table, not code, so the list in an error message is the list the code accepts.
 * Only square images are supported, as every timm preset is; a rectangular input would need
 * two sizes here and a different position-embedding grid, not a kernel change. */
#include "safecl/vit.h"

#include <stdio.h>
#include <string.h>

typedef struct preset {
  const char *name;
  int64_t width, depth, heads;
} preset;

static const preset presets[] = {
    {"vit_tiny_patch16_224", 192, 12, 3},
    {"vit_small_patch16_224", 384, 12, 6},
    {"vit_base_patch16_224", 768, 12, 12},
    {"vit_large_patch16_224", 1024, 24, 16},
};
enum { N_PRESETS = sizeof presets / sizeof presets[0] };

const char *vit_config_preset_names(void) {
  return "vit_tiny_patch16_224, vit_small_patch16_224, vit_base_patch16_224, "
         "vit_large_patch16_224";
}

scl_err vit_config_preset(const char *name, vit_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < N_PRESETS; i++) {
    if (name && strcmp(name, presets[i].name) == 0) {
      snprintf(cfg->name, sizeof cfg->name, "%s", presets[i].name);
      cfg->img_size = 224;
      cfg->patch_size = 16;
      cfg->in_chans = 3;
      cfg->width = presets[i].width;
      cfg->depth = presets[i].depth;
      cfg->heads = presets[i].heads;
      cfg->mlp_hidden = 4 * presets[i].width;
      cfg->ln_eps = 1e-6f;
      return SCL_OK;
    }
  }
  return SCL_ERROR(SCL_ERR_ARG, "unknown ViT preset '%s'; valid presets: %s",
                   name ? name : "(null)", vit_config_preset_names());
}

scl_err vit_config_validate(const vit_config *c) {
  const struct {
    const char *key;
    int64_t value;
  } positive[] = {{"img_size", c->img_size},    {"patch_size", c->patch_size},
                  {"in_chans", c->in_chans},    {"width", c->width},
                  {"depth", c->depth},          {"heads", c->heads},
                  {"mlp_hidden", c->mlp_hidden}};
  for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
    SCL_CHECK(positive[i].value > 0 && positive[i].value <= (1 << 20), SCL_ERR_ARG,
              "ViT config '%s': %s = %lld is outside [1, 2^20]", c->name, positive[i].key,
              (long long)positive[i].value);
  SCL_CHECK(c->img_size % c->patch_size == 0, SCL_ERR_ARG,
            "ViT config '%s': img_size %lld is not a multiple of "
            "patch_size %lld",
            c->name, (long long)c->img_size, (long long)c->patch_size);
  SCL_CHECK(c->width % c->heads == 0, SCL_ERR_ARG,
            "ViT config '%s': width %lld is not a multiple of heads %lld", c->name,
            (long long)c->width, (long long)c->heads);
  SCL_CHECK(c->ln_eps > 0.0f, SCL_ERR_ARG, "ViT config '%s': ln_eps must be positive", c->name);
  return SCL_OK;
}

int64_t vit_config_tokens(const vit_config *c) {
  int64_t g = c->img_size / c->patch_size;
  return g * g + 1;
}

int64_t vit_config_param_count(const vit_config *c) {
  const int64_t D = c->width, F = c->mlp_hidden, N = vit_config_tokens(c);
  const int64_t patch = D * c->in_chans * c->patch_size * c->patch_size + D;
  const int64_t block =
      2 * D + (3 * D * D + 3 * D) + (D * D + D) + 2 * D + (F * D + F) + (D * F + D);
  return patch + D + N * D + c->depth * block + 2 * D;
}

double vit_config_flops_per_image(const vit_config *c) {
  const double D = (double)c->width, F = (double)c->mlp_hidden, N = (double)vit_config_tokens(c);
  const double K = (double)(c->in_chans * c->patch_size * c->patch_size);
  const double block = N * D * 3.0 * D + 2.0 * N * N * D + N * D * D + 2.0 * N * D * F;
  return 2.0 * ((N - 1.0) * K * D + (double)c->depth * block);
}
