/* Test harness and fixture loading shared by the ddaebm C tests (see common.h). */

#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- harness ---------------------------------------------------------------------------- */

static struct {
  unsigned failures;  /* failed checks in the running case */
  char why[1024];     /* the first of them, with file:line */
} current;

static unsigned passed, failed;

void check_failed(const char *file, int line, const char *fmt, ...) {
  if (current.failures++ > 0) return;
  int n = snprintf(current.why, sizeof current.why, "%s:%d: ", file, line);
  if (n < 0 || (size_t)n >= sizeof current.why) return;
  va_list args;
  va_start(args, fmt);
  vsnprintf(current.why + n, sizeof current.why - (size_t)n, fmt, args);
  va_end(args);
}

void run_test(const char *name, void (*fn)(void)) {
  current.failures = 0;
  current.why[0] = '\0';
  fn();
  if (current.failures == 0) {
    passed++;
    printf("ok - %s\n", name);
  } else {
    failed++;
    if (current.failures == 1) {
      printf("not ok - %s: %s\n", name, current.why);
    } else {
      printf("not ok - %s: %s (and %u more failed checks)\n", name, current.why,
             current.failures - 1);
    }
  }
  fflush(stdout);
}

int finish_tests(void) {
  printf("C tests: %u passed, %u failed\n", passed, failed);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- fixture ---------------------------------------------------------------------------- */

const char *fixture_path(const fixture *fx, const char *name, char *buf, size_t buf_len) {
  int n = snprintf(buf, buf_len, "%s/%s", fx->dir, name);
  if (n < 0 || (size_t)n >= buf_len) {
    fprintf(stderr, "fixture path too long: %s/%s\n", fx->dir, name);
    abort();
  }
  return buf;
}

/* Reads exactly `len` bytes of `name` into a new buffer; NULL (with `err` set) otherwise. */
static unsigned char *read_exact(const fixture *fx, const char *name, size_t len, char *err,
                                 size_t err_len) {
  char path[4096];
  fixture_path(fx, name, path, sizeof path);
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, err_len, "cannot open %s", path);
    return NULL;
  }
  unsigned char *buf = malloc(len + 1);
  if (buf == NULL) {
    snprintf(err, err_len, "out of memory reading %s", path);
    fclose(f);
    return NULL;
  }
  /* Read one byte more than expected to notice a file that is too long. */
  size_t got = fread(buf, 1, len + 1, f);
  fclose(f);
  if (got != len) {
    snprintf(err, err_len, "%s: expected %zu bytes, read %zu", path, len, got);
    free(buf);
    return NULL;
  }
  return buf;
}

/* Reads `count` little-endian float32 values from `name`. */
static float *read_f32(const fixture *fx, const char *name, size_t count, char *err,
                       size_t err_len) {
  unsigned char *bytes = read_exact(fx, name, count * 4, err, err_len);
  if (bytes == NULL) return NULL;
  float *out = malloc(count * sizeof *out);
  if (out == NULL) {
    snprintf(err, err_len, "out of memory reading %s", name);
    free(bytes);
    return NULL;
  }
  for (size_t i = 0; i < count; i++) {
    const unsigned char *b = bytes + 4 * i;
    uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                    (uint32_t)b[3] << 24;
    memcpy(&out[i], &bits, sizeof bits);
  }
  free(bytes);
  return out;
}

/* Reads `count` little-endian float64 values from `name` into `out`. */
static int read_f64(const fixture *fx, const char *name, double *out, size_t count, char *err,
                    size_t err_len) {
  unsigned char *bytes = read_exact(fx, name, count * 8, err, err_len);
  if (bytes == NULL) return 0;
  for (size_t i = 0; i < count; i++) {
    uint64_t bits = 0;
    for (int k = 7; k >= 0; k--) bits = bits << 8 | bytes[8 * i + (size_t)k];
    memcpy(&out[i], &bits, sizeof bits);
  }
  free(bytes);
  return 1;
}

/* Parses fixture.txt ("key value" lines) into the scalar fields of `fx`. */
static int read_summary(fixture *fx, char *err, size_t err_len) {
  char path[4096];
  fixture_path(fx, "fixture.txt", path, sizeof path);
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    snprintf(err, err_len, "cannot open %s", path);
    return 0;
  }
  enum {
    ROWS = 1,
    DIM = 2,
    SAMPLE_ROWS = 4,
    SAMPLE_SEED = 8,
    FLAGGED = 16,
    THRESHOLD = 32,
    IMAGE_CHANNELS = 64,
    IMAGE_HEIGHT = 128,
    IMAGE_WIDTH = 256,
    IMAGE_ROWS = 512,
    CALIBRATION_ROWS = 1024,
    ALL = 2047
  };
  unsigned seen = 0;
  char key[64], value[64];
  while (fscanf(f, "%63s %63s", key, value) == 2) {
    char *end = NULL;
    unsigned long long n = strtoull(value, &end, 10);
    if (strcmp(key, "threshold") == 0) {
      fx->threshold = strtof(value, &end);
      seen |= THRESHOLD;
    } else if (strcmp(key, "rows") == 0) {
      fx->rows = (size_t)n;
      seen |= ROWS;
    } else if (strcmp(key, "dim") == 0) {
      fx->dim = (size_t)n;
      seen |= DIM;
    } else if (strcmp(key, "sample_rows") == 0) {
      fx->sample_rows = (size_t)n;
      seen |= SAMPLE_ROWS;
    } else if (strcmp(key, "sample_seed") == 0) {
      fx->sample_seed = (uint64_t)n;
      seen |= SAMPLE_SEED;
    } else if (strcmp(key, "flagged") == 0) {
      fx->flagged = (size_t)n;
      seen |= FLAGGED;
    } else if (strcmp(key, "calibration_rows") == 0) {
      fx->calibration_rows = (uint64_t)n;
      seen |= CALIBRATION_ROWS;
    } else if (strcmp(key, "image_channels") == 0) {
      fx->image_channels = (size_t)n;
      seen |= IMAGE_CHANNELS;
    } else if (strcmp(key, "image_height") == 0) {
      fx->image_height = (size_t)n;
      seen |= IMAGE_HEIGHT;
    } else if (strcmp(key, "image_width") == 0) {
      fx->image_width = (size_t)n;
      seen |= IMAGE_WIDTH;
    } else if (strcmp(key, "image_rows") == 0) {
      fx->image_rows = (size_t)n;
      seen |= IMAGE_ROWS;
    } else {
      continue; /* unknown keys are for other bindings */
    }
    if (*end != '\0') {
      snprintf(err, err_len, "%s: bad value for %s: %s", path, key, value);
      fclose(f);
      return 0;
    }
  }
  fclose(f);
  if (seen != ALL) {
    snprintf(err, err_len, "%s: missing keys", path);
    return 0;
  }
  return 1;
}

int fixture_load(fixture *fx, const char *dir, char *err, size_t err_len) {
  memset(fx, 0, sizeof *fx);
  fx->dir = dir;
  if (!read_summary(fx, err, err_len)) return 0;
  if (fx->rows == 0 || fx->dim == 0 || fx->sample_rows == 0) {
    snprintf(err, err_len, "%s/fixture.txt: rows, dim and sample_rows must be positive", dir);
    return 0;
  }
  if (fx->image_channels == 0 || fx->image_height == 0 || fx->image_width == 0 ||
      fx->image_rows == 0) {
    snprintf(err, err_len, "%s/fixture.txt: the image_* values must be positive", dir);
    return 0;
  }
  size_t image_values = fx->image_channels * fx->image_height * fx->image_width;
  fx->x = read_f32(fx, "rows.f32", fx->rows * fx->dim, err, err_len);
  fx->energy = fx->x ? read_f32(fx, "energy.f32", fx->rows, err, err_len) : NULL;
  fx->pvalue = fx->energy ? read_f32(fx, "pvalue.f32", fx->rows, err, err_len) : NULL;
  fx->explain =
      fx->pvalue ? read_f32(fx, "explain.f32", fx->rows * fx->dim, err, err_len) : NULL;
  fx->sample =
      fx->explain ? read_f32(fx, "sample.f32", fx->sample_rows * fx->dim, err, err_len) : NULL;
  fx->is_ood = fx->sample ? read_exact(fx, "is_ood.u8", fx->rows, err, err_len) : NULL;
  fx->image_x = fx->is_ood ? read_f32(fx, "image_rows.f32", fx->image_rows * image_values, err,
                                      err_len)
                           : NULL;
  fx->image_energy =
      fx->image_x ? read_f32(fx, "image_energy.f32", fx->image_rows, err, err_len) : NULL;
  fx->gcd_energy =
      fx->image_energy ? read_f32(fx, "gcd_energy.f32", fx->rows, err, err_len) : NULL;
  fx->gcd_sample = fx->gcd_energy ? read_f32(fx, "gcd_sample.f32", fx->sample_rows * fx->dim,
                                             err, err_len)
                                  : NULL;
  fx->dcd_energy = fx->gcd_sample ? read_f32(fx, "dcd_energy.f32", fx->rows, err, err_len) : NULL;
  fx->dcd_sample = fx->dcd_energy ? read_f32(fx, "dcd_sample.f32", fx->sample_rows * fx->dim,
                                             err, err_len)
                                  : NULL;
  if (fx->dcd_sample == NULL) {
    fixture_free(fx);
    return 0;
  }
  double drift[6];
  if (!read_f64(fx, "drift.f64", drift, 6, err, err_len)) {
    fixture_free(fx);
    return 0;
  }
  memcpy(fx->drift_all, drift, sizeof fx->drift_all);
  memcpy(fx->drift_half, drift + 3, sizeof fx->drift_half);
  return 1;
}

void fixture_free(fixture *fx) {
  free(fx->x);
  free(fx->energy);
  free(fx->pvalue);
  free(fx->explain);
  free(fx->sample);
  free(fx->is_ood);
  free(fx->image_x);
  free(fx->image_energy);
  free(fx->gcd_energy);
  free(fx->gcd_sample);
  free(fx->dcd_energy);
  free(fx->dcd_sample);
  memset(fx, 0, sizeof *fx);
}
