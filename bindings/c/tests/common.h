/*
 * Test harness and fixture loading shared by the ddaebm C tests.
 *
 * The harness is deliberately tiny: a test case is a `void (*)(void)`; CHECK() records a
 * failure and lets the case go on, so one run shows every broken expectation. Checks are made
 * from the main thread only (worker threads report their findings back through their own
 * structs).
 */

#ifndef DDAEBM_TEST_COMMON_H
#define DDAEBM_TEST_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PRINTF_LIKE(fmt, args)
#endif

/* Records a failed check in the running test case unless `cond` holds. */
#define CHECK(cond, ...)                                                                       \
  do {                                                                                         \
    if (!(cond)) check_failed(__FILE__, __LINE__, __VA_ARGS__);                                \
  } while (0)

void check_failed(const char *file, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Runs one test case and prints "ok - name" or "not ok - name: why". */
void run_test(const char *name, void (*fn)(void));

/* Prints "C tests: N passed, M failed" and returns the process exit status. */
int finish_tests(void);

/* The shared bindings fixture (see scripts/test-bindings.sh), decoded to native floats. */
typedef struct fixture {
  const char *dir;
  size_t rows;         /* rows in rows.f32 / rows.csv */
  size_t dim;          /* features per row */
  size_t sample_rows;  /* rows in sample.f32 */
  uint64_t sample_seed;
  size_t flagged;      /* rows with is_ood == 1 */
  float threshold;
  uint64_t calibration_rows; /* calibration energies stored in the model */
  float *x;            /* rows × dim inputs, row-major */
  float *energy;       /* rows */
  float *pvalue;       /* rows */
  float *explain;      /* rows × dim: ddaebm_explain's attributions of x */
  uint8_t *is_ood;     /* rows */
  float *sample;       /* sample_rows × dim */
  /* drift.f64: ddaebm_drift's {p_value, effect, z} for all rows, then for the first rows / 2. */
  double drift_all[3], drift_half[3];
  /* The image model (image_model.safetensors) and its rows. */
  size_t image_channels, image_height, image_width;
  size_t image_rows;   /* images in image_rows.f32 */
  float *image_x;      /* image_rows × (C·H·W), each image channel-major, raw pixel scale */
  float *image_energy; /* image_rows */
  float *gcd_energy;   /* rows: the GCD model's energies of x */
  float *gcd_sample;   /* sample_rows × dim: the GCD model's samples */
  float *dcd_energy;   /* rows: the DCD model's energies of x */
  float *dcd_sample;   /* sample_rows × dim: the DCD model's samples */
} fixture;

/* Loads every fixture file from `dir`; on failure writes a message to `err` and returns 0. */
int fixture_load(fixture *fx, const char *dir, char *err, size_t err_len);
void fixture_free(fixture *fx);

/* Writes "<fixture dir>/<name>" into `buf` (aborts if it does not fit). */
const char *fixture_path(const fixture *fx, const char *name, char *buf, size_t buf_len);

#endif /* DDAEBM_TEST_COMMON_H */
