/*
 * Tests of the ddaebm C ABI (include/ddaebm.h) against libddaebm.so and the shared bindings
 * fixture. bindings/c/test.sh builds them with ASan/UBSan (and once more for Valgrind).
 *
 * Usage: test_ddaebm FIXTURE_DIR
 * DDAEBM_TEST_ITERATIONS (default 50) sets how many rounds each thread of the concurrency
 * tests runs; DDAEBM_STRESS_THREADS (default 16) and DDAEBM_STRESS_SECONDS (default 2) set the
 * threads and duration of the mixed-call stress test (0 seconds: one round per thread).
 */

#define _POSIX_C_SOURCE 200809L /* pthread_barrier_t */

#include "common.h"
#include "ddaebm.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N_THREADS = 8, MESSAGE_LEN = 512 };

static fixture fx;
static int iterations = 50;
static int stress_threads = 16;
static int stress_seconds = 2;

/* ---- helpers ---------------------------------------------------------------------------- */

/* Byte that prefills output buffers, to prove a failing call wrote nothing. */
#define SENTINEL 0xA5

static void fill_sentinel(void *p, size_t n) { memset(p, SENTINEL, n); }

static bool is_sentinel(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    if (b[i] != SENTINEL) return false;
  }
  return true;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    abort();
  }
  return p;
}

/* `p` moved on by one byte, so it is not aligned for a float. Only the address is formed (the
 * library must refuse it before any access); the buffer behind it has room for the shift. */
static float *misaligned(void *p) { return (float *)((uintptr_t)p + 1); }

/* Whether `msg` mentions "<word> <index>" as a whole number ("row 3" is not in "row 37"). */
static bool names_index(const char *msg, const char *word, size_t index) {
  char needle[64];
  snprintf(needle, sizeof needle, "%s %zu", word, index);
  for (const char *hit = strstr(msg, needle); hit != NULL; hit = strstr(hit + 1, needle)) {
    if (!isdigit((unsigned char)hit[strlen(needle)])) return true;
  }
  return false;
}

/* Reports the first element where two float arrays differ in their bits. */
#define CHECK_SAME_F32(what, got, want, n) check_same_f32(__FILE__, __LINE__, what, got, want, n)
static void check_same_f32(const char *file, int line, const char *what, const float *got,
                           const float *want, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (memcmp(&got[i], &want[i], sizeof got[i]) != 0) {
      check_failed(file, line, "%s[%zu] is %.9g, expected %.9g (not bit-identical)", what, i,
                   (double)got[i], (double)want[i]);
      return;
    }
  }
}

#define CHECK_SAME_U8(what, got, want, n) check_same_u8(__FILE__, __LINE__, what, got, want, n)
static void check_same_u8(const char *file, int line, const char *what, const uint8_t *got,
                          const uint8_t *want, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (got[i] != want[i]) {
      check_failed(file, line, "%s[%zu] is %u, expected %u", what, i, got[i], want[i]);
      return;
    }
  }
}

/* A failing call whose message every later failure must replace: the model file name. */
#define PRIMER_FILE "ddaebm-test-primer.safetensors"

static void prime_last_error(void) {
  ddaebm_model *m = NULL;
  ddaebm_status s = ddaebm_model_open("/nonexistent/" PRIMER_FILE, NULL, &m);
  CHECK(s == DDAEBM_ERR_IO && strstr(ddaebm_last_error(), PRIMER_FILE) != NULL,
        "priming the last error failed: %s, \"%s\"", ddaebm_status_string(s),
        ddaebm_last_error());
}

/* Checks a status; for a failure also that the call set a fresh, non-empty message. */
static void expect_status(const char *file, int line, const char *what, ddaebm_status got,
                          ddaebm_status want) {
  const char *msg = ddaebm_last_error();
  if (got != want) {
    check_failed(file, line, "%s returned %s, expected %s (last error: \"%s\")", what,
                 ddaebm_status_string(got), ddaebm_status_string(want), msg);
  } else if (want != DDAEBM_OK && (msg[0] == '\0' || strstr(msg, PRIMER_FILE) != NULL)) {
    check_failed(file, line, "%s failed without setting the last error (\"%s\")", what, msg);
  }
}

#define EXPECT_OK(call) expect_status(__FILE__, __LINE__, #call, (call), DDAEBM_OK)
#define EXPECT_ERR(want, call)                                                                 \
  do {                                                                                         \
    prime_last_error();                                                                        \
    expect_status(__FILE__, __LINE__, #call, (call), (want));                                  \
  } while (0)

/* Opens the fixture model; NULL (after a failed check) if that fails. */
static ddaebm_model *open_model(const ddaebm_open_options *opts) {
  char path[4096];
  ddaebm_model *m = NULL;
  EXPECT_OK(ddaebm_model_open(fixture_path(&fx, "model.safetensors", path, sizeof path), opts,
                              &m));
  return m;
}

/* Opens the fixture model with `opts`, runs `check` on it and frees it. */
static void with_model(const ddaebm_open_options *opts, void (*check)(const ddaebm_model *)) {
  ddaebm_model *m = open_model(opts);
  if (m == NULL) return;
  check(m);
  ddaebm_model_free(m);
}

/* ---- results match the fixture ---------------------------------------------------------- */

static void check_energy(const ddaebm_model *m) {
  float *energy = xmalloc(fx.rows * sizeof *energy);
  EXPECT_OK(ddaebm_energy(m, fx.x, fx.rows, fx.dim, energy));
  CHECK_SAME_F32("energy", energy, fx.energy, fx.rows);
  free(energy);
}

static void check_screen(const ddaebm_model *m) {
  float *energy = xmalloc(fx.rows * sizeof *energy);
  uint8_t *is_ood = xmalloc(fx.rows);
  EXPECT_OK(ddaebm_screen(m, fx.x, fx.rows, fx.dim, energy, is_ood));
  CHECK_SAME_F32("energy", energy, fx.energy, fx.rows);
  CHECK_SAME_U8("is_ood", is_ood, fx.is_ood, fx.rows);
  size_t flagged = 0;
  float threshold = ddaebm_model_threshold(m);
  for (size_t i = 0; i < fx.rows; i++) {
    flagged += is_ood[i];
    CHECK(is_ood[i] == (energy[i] > threshold), "is_ood[%zu] = %u but energy %.9g vs %.9g", i,
          is_ood[i], (double)energy[i], (double)threshold);
  }
  CHECK(flagged == fx.flagged, "%zu rows flagged, fixture says %zu", flagged, fx.flagged);
  free(energy);
  free(is_ood);
}

static void check_pvalues(const ddaebm_model *m) {
  float *pvalue = xmalloc(fx.rows * sizeof *pvalue);
  EXPECT_OK(ddaebm_pvalues(m, fx.x, fx.rows, fx.dim, pvalue));
  CHECK_SAME_F32("pvalue", pvalue, fx.pvalue, fx.rows);
  for (size_t i = 0; i < fx.rows; i++) {
    CHECK(pvalue[i] > 0.0f && pvalue[i] <= 1.0f, "pvalue[%zu] = %g", i, (double)pvalue[i]);
  }
  free(pvalue);
}

/* ddaebm_explain: rows × dim attributions, bit for bit; exactly that many floats are written
 * into a larger buffer. */
static void check_explain(const ddaebm_model *m) {
  size_t n = fx.rows * fx.dim, spare = fx.dim;
  float *attribution = xmalloc((n + spare) * sizeof *attribution);
  fill_sentinel(attribution, (n + spare) * sizeof *attribution);
  EXPECT_OK(ddaebm_explain(m, fx.x, fx.rows, fx.dim, attribution));
  CHECK_SAME_F32("explain", attribution, fx.explain, n);
  CHECK(is_sentinel(attribution + n, spare * sizeof *attribution),
        "explain wrote past rows × dim");
  for (size_t i = 0; i < n; i++) {
    CHECK(isfinite(attribution[i]), "attribution[%zu] = %g", i, (double)attribution[i]);
  }
  free(attribution);
}

/* Compares a drift result with {p_value, effect, z} of drift.f64 bit for bit, and its row
 * counts with the batch's and the fixture's. */
#define CHECK_DRIFT(what, got, want, rows) check_drift_result(__FILE__, __LINE__, what, got, want, rows)
static void check_drift_result(const char *file, int line, const char *what,
                               const ddaebm_drift_result *got, const double want[3],
                               size_t rows) {
  const double have[3] = {got->p_value, got->effect, got->z};
  const char *names[3] = {"p_value", "effect", "z"};
  for (size_t i = 0; i < 3; i++) {
    if (memcmp(&have[i], &want[i], sizeof have[i]) != 0) {
      check_failed(file, line, "%s: %s is %.17g, expected %.17g (not bit-identical)", what,
                   names[i], have[i], want[i]);
      return;
    }
  }
  if (got->batch_rows != rows || got->calibration_rows != fx.calibration_rows) {
    check_failed(file, line, "%s: %llu batch rows and %llu calibration rows, expected %zu and %llu",
                 what, (unsigned long long)got->batch_rows,
                 (unsigned long long)got->calibration_rows, rows,
                 (unsigned long long)fx.calibration_rows);
  }
}

static void check_drift(const ddaebm_model *m) {
  ddaebm_drift_result all, half;
  EXPECT_OK(ddaebm_drift(m, fx.x, fx.rows, fx.dim, &all));
  CHECK_DRIFT("drift of all rows", &all, fx.drift_all, fx.rows);
  EXPECT_OK(ddaebm_drift(m, fx.x, fx.rows / 2, fx.dim, &half));
  CHECK_DRIFT("drift of the first half", &half, fx.drift_half, fx.rows / 2);
  /* Half of the rows are far away: a tiny p-value, energies above the calibration's. */
  CHECK(all.p_value > 0.0 && all.p_value < 1e-4 && all.effect > 0.5 && all.z > 0.0,
        "drift of all rows: p %g, effect %g, z %g", all.p_value, all.effect, all.z);
  CHECK(half.p_value > all.p_value && half.p_value <= 1.0 && half.effect >= 0.0 &&
            half.effect <= 1.0,
        "drift of the in-distribution half: p %g, effect %g", half.p_value, half.effect);
}

/* Also checks that exactly rows × dim floats are written into a larger buffer. */
static void check_sample(const ddaebm_model *m) {
  size_t n = fx.sample_rows * fx.dim, spare = fx.dim;
  float *sample = xmalloc((n + spare) * sizeof *sample);
  fill_sentinel(sample, (n + spare) * sizeof *sample);
  EXPECT_OK(ddaebm_sample(m, fx.sample_rows, fx.sample_seed, sample, n + spare));
  CHECK_SAME_F32("sample", sample, fx.sample, n);
  CHECK(is_sentinel(sample + n, spare * sizeof *sample), "sample wrote past rows × dim");
  free(sample);
}

static void check_all(const ddaebm_model *m) {
  check_energy(m);
  check_screen(m);
  check_pvalues(m);
  check_drift(m);
  check_sample(m);
}

static void test_energy_matches_fixture(void) { with_model(NULL, check_energy); }
static void test_screen_matches_fixture(void) { with_model(NULL, check_screen); }
static void test_pvalues_matches_fixture(void) { with_model(NULL, check_pvalues); }
static void test_drift_matches_fixture(void) { with_model(NULL, check_drift); }
static void test_explain_matches_fixture(void) { with_model(NULL, check_explain); }
static void test_sample_matches_fixture(void) { with_model(NULL, check_sample); }

/* ---- version, options, getters ---------------------------------------------------------- */

static void test_version(void) {
  CHECK(strcmp(ddaebm_version(), DDAEBM_VERSION_STRING) == 0,
        "ddaebm_version() = \"%s\", header says \"%s\"", ddaebm_version(), DDAEBM_VERSION_STRING);
  CHECK(ddaebm_version_number() == DDAEBM_VERSION_NUMBER,
        "ddaebm_version_number() = %u, header says %u", (unsigned)ddaebm_version_number(),
        (unsigned)DDAEBM_VERSION_NUMBER);
  /* The macros agree with each other (rustls-ffi once shipped MINOR in the PATCH slot). */
  CHECK(DDAEBM_VERSION_NUMBER ==
            DDAEBM_VERSION_MAJOR * 10000 + DDAEBM_VERSION_MINOR * 100 + DDAEBM_VERSION_PATCH,
        "DDAEBM_VERSION_NUMBER %d disagrees with MAJOR/MINOR/PATCH", DDAEBM_VERSION_NUMBER);
  char from_parts[32];
  snprintf(from_parts, sizeof from_parts, "%d.%d.%d", DDAEBM_VERSION_MAJOR, DDAEBM_VERSION_MINOR,
           DDAEBM_VERSION_PATCH);
  CHECK(strcmp(from_parts, DDAEBM_VERSION_STRING) == 0, "DDAEBM_VERSION_STRING \"%s\" != \"%s\"",
        DDAEBM_VERSION_STRING, from_parts);
}

static void test_open_options_default(void) {
  ddaebm_open_options opts = ddaebm_open_options_default();
  CHECK(opts.device != NULL && strcmp(opts.device, "cpu") == 0, "default device is \"%s\"",
        opts.device ? opts.device : "(null)");
  CHECK(opts.threads == 0, "default threads is %u", (unsigned)opts.threads);
}

static void test_open_null_options(void) { with_model(NULL, check_all); }

static void test_open_cpu_two_threads(void) {
  ddaebm_open_options opts = ddaebm_open_options_default();
  opts.device = "cpu";
  opts.threads = 2;
  with_model(&opts, check_all);
}

static void test_open_null_device_is_cpu(void) {
  ddaebm_open_options opts = ddaebm_open_options_default();
  opts.device = NULL;
  opts.threads = 1;
  with_model(&opts, check_all);
}

static void check_getters(const ddaebm_model *m) {
  CHECK(ddaebm_model_input_dim(m) == fx.dim, "input_dim %zu, fixture dim %zu",
        ddaebm_model_input_dim(m), fx.dim);
  float threshold = ddaebm_model_threshold(m);
  CHECK(threshold == fx.threshold, "threshold %.9g, fixture %.9g", (double)threshold,
        (double)fx.threshold);
  const char *meta = ddaebm_model_metadata(m);
  CHECK(meta != NULL && meta[0] == '{' && strstr(meta, "\"network\"") != NULL,
        "metadata is not a JSON object with \"network\": %.80s", meta ? meta : "(null)");
  CHECK(ddaebm_model_metadata(m) == meta, "metadata pointer changes between calls");
}

static void test_getters(void) { with_model(NULL, check_getters); }

static void test_getters_on_null(void) {
  CHECK(ddaebm_model_input_dim(NULL) == 0, "input_dim(NULL) = %zu", ddaebm_model_input_dim(NULL));
  CHECK(isnan(ddaebm_model_threshold(NULL)), "threshold(NULL) = %g",
        (double)ddaebm_model_threshold(NULL));
  CHECK(ddaebm_model_metadata(NULL) == NULL, "metadata(NULL) is not NULL");
}

static void test_model_free_null(void) {
  prime_last_error();
  ddaebm_model_free(NULL);
  CHECK(strstr(ddaebm_last_error(), PRIMER_FILE) != NULL, "ddaebm_model_free(NULL) set an error");
}

static void test_status_strings(void) {
  static const struct {
    ddaebm_status code;
    const char *name;
  } codes[] = {
      {DDAEBM_OK, "DDAEBM_OK"},
      {DDAEBM_ERR_NULL_ARGUMENT, "DDAEBM_ERR_NULL_ARGUMENT"},
      {DDAEBM_ERR_INVALID_ARGUMENT, "DDAEBM_ERR_INVALID_ARGUMENT"},
      {DDAEBM_ERR_IO, "DDAEBM_ERR_IO"},
      {DDAEBM_ERR_BAD_MODEL, "DDAEBM_ERR_BAD_MODEL"},
      {DDAEBM_ERR_UNSUPPORTED_VERSION, "DDAEBM_ERR_UNSUPPORTED_VERSION"},
      {DDAEBM_ERR_SHAPE_MISMATCH, "DDAEBM_ERR_SHAPE_MISMATCH"},
      {DDAEBM_ERR_NON_FINITE, "DDAEBM_ERR_NON_FINITE"},
      {DDAEBM_ERR_DEVICE_UNAVAILABLE, "DDAEBM_ERR_DEVICE_UNAVAILABLE"},
      {DDAEBM_ERR_INTERNAL, "DDAEBM_ERR_INTERNAL"},
      {DDAEBM_ERR_PANIC, "DDAEBM_ERR_PANIC"},
  };
  size_t n = sizeof codes / sizeof codes[0];
  CHECK(n == DDAEBM_ERR_PANIC + 1, "the table misses a status code");
  for (size_t i = 0; i < n; i++) {
    /* "NAME: meaning" */
    const char *s = ddaebm_status_string(codes[i].code);
    size_t len = strlen(codes[i].name);
    CHECK(s != NULL && strncmp(s, codes[i].name, len) == 0 && s[len] == ':' && s[len + 1] != '\0',
          "ddaebm_status_string(%u) = \"%s\"", (unsigned)codes[i].code, s ? s : "(null)");
  }
  const uint32_t unknown[] = {DDAEBM_ERR_PANIC + 1, 7000, UINT32_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *s = ddaebm_status_string(unknown[i]);
    CHECK(s != NULL && strcmp(s, "unknown status") == 0, "ddaebm_status_string(%u) = \"%s\"",
          (unsigned)unknown[i], s ? s : "(null)");
  }
}

/* ---- image models ----------------------------------------------------------------------- */

/* Opens the fixture's image model with `opts`; NULL (after a failed check) if that fails. */
static ddaebm_model *open_image_model(const ddaebm_open_options *opts) {
  char path[4096];
  ddaebm_model *m = NULL;
  EXPECT_OK(ddaebm_model_open(fixture_path(&fx, "image_model.safetensors", path, sizeof path),
                              opts, &m));
  return m;
}

static void test_image_shape(void) {
  size_t c = 7, h = 7, w = 7;
  ddaebm_model *image = open_image_model(NULL);
  if (image != NULL) {
    EXPECT_OK(ddaebm_model_image_shape(image, &c, &h, &w));
    CHECK(c == fx.image_channels && h == fx.image_height && w == fx.image_width,
          "image shape %zu×%zu×%zu, fixture %zu×%zu×%zu", c, h, w, fx.image_channels,
          fx.image_height, fx.image_width);
    size_t values = fx.image_channels * fx.image_height * fx.image_width;
    CHECK(ddaebm_model_input_dim(image) == values, "image model input_dim %zu, C·H·W %zu",
          ddaebm_model_input_dim(image), values);
    const char *meta = ddaebm_model_metadata(image);
    CHECK(meta != NULL && strstr(meta, "\"image\"") != NULL,
          "image model metadata has no \"image\" entry: %.80s", meta ? meta : "(null)");

    /* Any NULL argument: an error, and nothing written. */
    c = h = w = 7;
    EXPECT_ERR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm_model_image_shape(NULL, &c, &h, &w));
    EXPECT_ERR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm_model_image_shape(image, NULL, &h, &w));
    EXPECT_ERR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm_model_image_shape(image, &c, NULL, &w));
    EXPECT_ERR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm_model_image_shape(image, &c, &h, NULL));
    CHECK(c == 7 && h == 7 && w == 7, "a failing ddaebm_model_image_shape wrote %zu×%zu×%zu", c,
          h, w);
    ddaebm_model_free(image);
  }
  /* A vector-data model: 0, 0, 0. */
  ddaebm_model *vector = open_model(NULL);
  if (vector != NULL) {
    c = h = w = 7;
    EXPECT_OK(ddaebm_model_image_shape(vector, &c, &h, &w));
    CHECK(c == 0 && h == 0 && w == 0, "vector model image shape %zu×%zu×%zu, expected 0×0×0", c,
          h, w);
    ddaebm_model_free(vector);
  }
}

/* Image rows are flat C·H·W floats, channel-major, in the raw pixel scale. */
static void check_image_energy(const ddaebm_open_options *opts) {
  ddaebm_model *m = open_image_model(opts);
  if (m == NULL) return;
  size_t n = fx.image_rows, len = fx.image_channels * fx.image_height * fx.image_width;
  float *energy = xmalloc(n * sizeof *energy), *screened = xmalloc(n * sizeof *screened);
  uint8_t *is_ood = xmalloc(n);
  EXPECT_OK(ddaebm_energy(m, fx.image_x, n, len, energy));
  CHECK_SAME_F32("image energy", energy, fx.image_energy, n);
  EXPECT_OK(ddaebm_screen(m, fx.image_x, n, len, screened, is_ood));
  CHECK_SAME_F32("image screen energy", screened, fx.image_energy, n);
  float threshold = ddaebm_model_threshold(m);
  for (size_t i = 0; i < n; i++) {
    CHECK(is_ood[i] == (screened[i] > threshold), "image is_ood[%zu] = %u but energy %.9g vs %.9g",
          i, is_ood[i], (double)screened[i], (double)threshold);
  }
  /* A row of H·W values (one channel short) is refused. */
  EXPECT_ERR(DDAEBM_ERR_SHAPE_MISMATCH,
             ddaebm_energy(m, fx.image_x, n, fx.image_height * fx.image_width, energy));
  free(energy);
  free(screened);
  free(is_ood);
  ddaebm_model_free(m);
}

static void test_image_energy_matches_fixture(void) { check_image_energy(NULL); }

static void test_image_energy_pool_of_2(void) {
  ddaebm_open_options opts = ddaebm_open_options_default();
  opts.threads = 2;
  check_image_energy(&opts);
}

/* ---- models of the other training methods (GCD: Gaussian-policy sampler; DCD: Langevin
 * sampler on the energy) through the same calls --------------------------------------------- */

/* Opens the fixture's `file`, checks that its metadata names `sampler` (quoted) and that its
 * energies and samples equal Rust's, bit for bit. */
static void check_method_model(const char *file, const char *sampler, const char *label,
                               const float *want_energy, const float *want_sample) {
  char path[4096], quoted[64], what_energy[64], what_sample[64];
  ddaebm_model *m = NULL;
  EXPECT_OK(ddaebm_model_open(fixture_path(&fx, file, path, sizeof path), NULL, &m));
  if (m == NULL) return;
  snprintf(quoted, sizeof quoted, "\"%s\"", sampler);
  snprintf(what_energy, sizeof what_energy, "%s energy", label);
  snprintf(what_sample, sizeof what_sample, "%s sample", label);
  const char *meta = ddaebm_model_metadata(m);
  CHECK(meta != NULL && strstr(meta, quoted) != NULL, "%s model metadata names no %s sampler: %.80s",
        label, sampler, meta ? meta : "(null)");
  size_t n = fx.rows, s = fx.sample_rows * fx.dim;
  float *energy = xmalloc(n * sizeof *energy), *sample = xmalloc(s * sizeof *sample);
  EXPECT_OK(ddaebm_energy(m, fx.x, n, fx.dim, energy));
  CHECK_SAME_F32(what_energy, energy, want_energy, n);
  EXPECT_OK(ddaebm_sample(m, fx.sample_rows, fx.sample_seed, sample, s));
  CHECK_SAME_F32(what_sample, sample, want_sample, s);
  free(energy);
  free(sample);
  ddaebm_model_free(m);
}

static void test_gcd_model_scores_and_samples(void) {
  check_method_model("gcd_model.safetensors", "gaussian_policy", "GCD", fx.gcd_energy,
                     fx.gcd_sample);
}

static void test_dcd_model_scores_and_samples(void) {
  check_method_model("dcd_model.safetensors", "langevin", "DCD", fx.dcd_energy, fx.dcd_sample);
}

/* ---- edge cases that succeed ------------------------------------------------------------ */

static void check_screen_optional_outputs(const ddaebm_model *m) {
  float *energy = xmalloc(fx.rows * sizeof *energy);
  uint8_t *is_ood = xmalloc(fx.rows);

  fill_sentinel(is_ood, fx.rows);
  EXPECT_OK(ddaebm_screen(m, fx.x, fx.rows, fx.dim, energy, NULL));
  CHECK_SAME_F32("energy (is_ood NULL)", energy, fx.energy, fx.rows);

  fill_sentinel(energy, fx.rows * sizeof *energy);
  EXPECT_OK(ddaebm_screen(m, fx.x, fx.rows, fx.dim, NULL, is_ood));
  CHECK_SAME_U8("is_ood (energy NULL)", is_ood, fx.is_ood, fx.rows);

  EXPECT_OK(ddaebm_screen(m, fx.x, fx.rows, fx.dim, NULL, NULL));
  free(energy);
  free(is_ood);
}

static void test_screen_optional_outputs(void) { with_model(NULL, check_screen_optional_outputs); }

static void check_sample_seeds(const ddaebm_model *m) {
  size_t n = fx.sample_rows * fx.dim;
  float *a = xmalloc(n * sizeof *a), *b = xmalloc(n * sizeof *b), *c = xmalloc(n * sizeof *c);
  EXPECT_OK(ddaebm_sample(m, fx.sample_rows, 1234, a, n));
  EXPECT_OK(ddaebm_sample(m, fx.sample_rows, 1234, b, n));
  EXPECT_OK(ddaebm_sample(m, fx.sample_rows, 1235, c, n));
  CHECK_SAME_F32("sample with the same seed", b, a, n);
  CHECK(memcmp(a, c, n * sizeof *a) != 0, "seeds 1234 and 1235 give the same rows");
  for (size_t i = 0; i < n; i++) {
    CHECK(isfinite(a[i]), "sample[%zu] = %g", i, (double)a[i]);
  }
  free(a);
  free(b);
  free(c);
}

static void test_sample_seeds(void) { with_model(NULL, check_sample_seeds); }

/* n_rows == 0 succeeds with x (and, for sample, out) NULL, and writes nothing. */
static void check_empty_batch(const ddaebm_model *m) {
  float out = 42.0f;
  uint8_t is_ood = 42;
  EXPECT_OK(ddaebm_energy(m, NULL, 0, fx.dim, &out));
  EXPECT_OK(ddaebm_screen(m, NULL, 0, fx.dim, &out, &is_ood));
  EXPECT_OK(ddaebm_pvalues(m, NULL, 0, fx.dim, &out));
  EXPECT_OK(ddaebm_explain(m, NULL, 0, fx.dim, NULL));
  EXPECT_OK(ddaebm_explain(m, NULL, 0, fx.dim, &out));
  EXPECT_OK(ddaebm_sample(m, 0, fx.sample_seed, NULL, 0));
  EXPECT_OK(ddaebm_sample(m, 0, fx.sample_seed, &out, 1));
  CHECK(out == 42.0f && is_ood == 42, "an empty batch wrote an output");
}

static void test_empty_batch(void) { with_model(NULL, check_empty_batch); }

static void check_success_keeps_last_error(const ddaebm_model *m) {
  prime_last_error();
  check_energy(m);
  CHECK(strstr(ddaebm_last_error(), PRIMER_FILE) != NULL,
        "a successful call changed the last error to \"%s\"", ddaebm_last_error());
}

static void test_success_keeps_last_error(void) {
  with_model(NULL, check_success_keeps_last_error);
}

/* ---- finite but extreme rows: defined results ------------------------------------------ */

/* A number from the metadata JSON ("key": number), or 0 when the key is absent. */
static double metadata_number(const ddaebm_model *m, const char *key) {
  char quoted[64];
  snprintf(quoted, sizeof quoted, "\"%s\"", key);
  const char *hit = strstr(ddaebm_model_metadata(m), quoted);
  if (hit == NULL) return 0;
  hit = strchr(hit, ':');
  return hit == NULL ? 0 : strtod(hit + 1, NULL);
}

/* What a kind of row must score: the energy of an all-zero row (to within rounding); a finite
 * energy (above the threshold with a Gaussian base measure, the trainer's default); far out,
 * +INFINITY with a base measure, a number or +INFINITY without one. */
typedef enum { LIKE_ZERO, FINITE, FAR_OUT } extreme_expect;

static void check_extreme_rows(const ddaebm_model *m) {
  enum { D_MAX = 64 };
  if (fx.dim > D_MAX) return;
  const float tiny = 1.40129846e-45f; /* the smallest subnormal */
  const struct {
    const char *name;
    float a, b; /* even features get a, odd features b */
    extreme_expect want;
  } kinds[] = {
      {"zeros", 0.0f, 0.0f, LIKE_ZERO},
      {"negative zeros", -0.0f, -0.0f, LIKE_ZERO},
      {"smallest subnormals", tiny, -tiny, LIKE_ZERO},
      {"subnormals near FLT_MIN", 5.9e-39f, 5.9e-39f, LIKE_ZERO},
      {"+-1e6", 1e6f, -1e6f, FINITE},
      {"+-1e30", 1e30f, -1e30f, FAR_OUT},
      {"+-FLT_MAX", 3.40282347e38f, -3.40282347e38f, FAR_OUT},
  };
  size_t n_kinds = sizeof kinds / sizeof kinds[0];
  /* One batch: a row of each kind, then a fixture row with one FLT_MAX feature. */
  size_t rows = n_kinds + 1;
  float *x = xmalloc(rows * fx.dim * sizeof *x);
  for (size_t k = 0; k < n_kinds; k++) {
    for (size_t j = 0; j < fx.dim; j++) x[k * fx.dim + j] = j % 2 == 0 ? kinds[k].a : kinds[k].b;
  }
  memcpy(x + n_kinds * fx.dim, fx.x, fx.dim * sizeof *x);
  x[n_kinds * fx.dim + fx.dim - 1] = 3.40282347e38f;

  float *energy = xmalloc(rows * sizeof *energy), *screened = xmalloc(rows * sizeof *screened);
  float *pvalue = xmalloc(rows * sizeof *pvalue);
  uint8_t *is_ood = xmalloc(rows);
  EXPECT_OK(ddaebm_energy(m, x, rows, fx.dim, energy));
  EXPECT_OK(ddaebm_screen(m, x, rows, fx.dim, screened, is_ood));
  EXPECT_OK(ddaebm_pvalues(m, x, rows, fx.dim, pvalue));
  CHECK_SAME_F32("screen energy", screened, energy, rows);
  /* +INFINITY energies rank above every calibration energy: still a defined drift result. */
  ddaebm_drift_result drift = {0};
  EXPECT_OK(ddaebm_drift(m, x, rows, fx.dim, &drift));
  CHECK(drift.batch_rows == rows && drift.p_value > 0.0 && drift.p_value <= 1.0 &&
            drift.effect >= 0.0 && drift.effect <= 1.0 && !isnan(drift.z),
        "drift of extreme rows: p %g, effect %g, z %g, %llu rows", drift.p_value, drift.effect,
        drift.z, (unsigned long long)drift.batch_rows);

  size_t n_cal = (size_t)metadata_number(m, "num_samples");
  bool base_measure = metadata_number(m, "base_std") > 0;
  CHECK(n_cal > 0, "no num_samples in the metadata");
  float smallest = 1.0f / (float)(n_cal + 1), threshold = ddaebm_model_threshold(m);
  float zero = energy[0];
  for (size_t i = 0; i < rows; i++) {
    const char *name = i < n_kinds ? kinds[i].name : "one FLT_MAX feature";
    extreme_expect want = i < n_kinds ? kinds[i].want : FAR_OUT;
    float e = energy[i];
    CHECK(!isnan(e) && e != -INFINITY, "%s: energy %g", name, (double)e);
    switch (want) {
    case LIKE_ZERO: {
      /* Within 1e-5 relative (absolute below 1); no libm needed. */
      float diff = e > zero ? e - zero : zero - e, scale = zero > 0 ? zero : -zero;
      CHECK(diff <= 1e-5f * (scale > 1.0f ? scale : 1.0f), "%s: energy %.9g, zero row %.9g", name,
            (double)e, (double)zero);
      break;
    }
    case FINITE:
      CHECK(isfinite(e) && (e > threshold || !base_measure), "%s: energy %g (threshold %g)",
            name, (double)e, (double)threshold);
      break;
    case FAR_OUT:
      CHECK(e == INFINITY || !base_measure, "%s: energy %g, expected +inf", name, (double)e);
      break;
    }
    if (e == INFINITY) {
      CHECK(pvalue[i] == smallest, "%s: p-value %g, expected 1/(%zu + 1)", name,
            (double)pvalue[i], n_cal);
    }
    CHECK(is_ood[i] == (e > threshold), "%s: is_ood %u for energy %g", name, is_ood[i], (double)e);
    CHECK(pvalue[i] >= smallest && pvalue[i] <= 1.0f, "%s: p-value %g", name, (double)pvalue[i]);
  }
  free(x);
  free(energy);
  free(screened);
  free(pvalue);
  free(is_ood);
}

static void test_extreme_rows(void) { with_model(NULL, check_extreme_rows); }

/* ---- error paths ------------------------------------------------------------------------ */

static void test_open_errors(void) {
  /* A live model prefills the out handle: a failed open must leave it alone. */
  ddaebm_model *live = open_model(NULL);
  if (live == NULL) return;
  char model[4096], missing[4096], truncated[4096], random_bytes[4096], future[4096];
  fixture_path(&fx, "model.safetensors", model, sizeof model);
  fixture_path(&fx, "no-such-model.safetensors", missing, sizeof missing);
  fixture_path(&fx, "truncated.safetensors", truncated, sizeof truncated);
  fixture_path(&fx, "random.safetensors", random_bytes, sizeof random_bytes);
  fixture_path(&fx, "future.safetensors", future, sizeof future);
  ddaebm_open_options tpu = ddaebm_open_options_default(), empty = tpu, cuda = tpu, cuda1 = tpu;
  tpu.device = "tpu";
  empty.device = "";
  /* The library under test is built without the `cuda` feature. */
  cuda.device = "cuda";
  cuda1.device = "cuda:1";

  const struct {
    const char *path;
    const ddaebm_open_options *opts;
    ddaebm_status want;
  } cases[] = {
      {NULL, NULL, DDAEBM_ERR_NULL_ARGUMENT},
      {missing, NULL, DDAEBM_ERR_IO},
      {fx.dir, NULL, DDAEBM_ERR_IO}, /* a directory */
      {truncated, NULL, DDAEBM_ERR_BAD_MODEL},
      {random_bytes, NULL, DDAEBM_ERR_BAD_MODEL},
      {future, NULL, DDAEBM_ERR_UNSUPPORTED_VERSION},
      {model, &tpu, DDAEBM_ERR_INVALID_ARGUMENT},
      {model, &empty, DDAEBM_ERR_INVALID_ARGUMENT},
      {model, &cuda, DDAEBM_ERR_DEVICE_UNAVAILABLE},
      {model, &cuda1, DDAEBM_ERR_DEVICE_UNAVAILABLE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char what[4200];
    snprintf(what, sizeof what, "ddaebm_model_open(%s, device %s)",
             cases[i].path ? cases[i].path : "NULL",
             cases[i].opts ? cases[i].opts->device : "default");
    ddaebm_model *out = live;
    prime_last_error();
    expect_status(__FILE__, __LINE__, what, ddaebm_model_open(cases[i].path, cases[i].opts, &out),
                  cases[i].want);
    CHECK(out == live, "%s wrote the out handle on failure", what);
    if (out != live) ddaebm_model_free(out);
  }
  EXPECT_ERR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm_model_open(model, NULL, NULL));
  ddaebm_model_free(live);
}

/* energy, screen, pvalues and explain behind one signature, so each error case runs for all
 * four. */
typedef struct {
  const char *name;
  ddaebm_status (*call)(const ddaebm_model *, const float *, size_t, size_t, float *, uint8_t *);
  bool out_required; /* screen's outputs are optional */
} scorer;

static ddaebm_status call_energy(const ddaebm_model *m, const float *x, size_t n, size_t len,
                                 float *out, uint8_t *is_ood) {
  (void)is_ood;
  return ddaebm_energy(m, x, n, len, out);
}

static ddaebm_status call_screen(const ddaebm_model *m, const float *x, size_t n, size_t len,
                                 float *out, uint8_t *is_ood) {
  return ddaebm_screen(m, x, n, len, out, is_ood);
}

static ddaebm_status call_pvalues(const ddaebm_model *m, const float *x, size_t n, size_t len,
                                  float *out, uint8_t *is_ood) {
  (void)is_ood;
  return ddaebm_pvalues(m, x, n, len, out);
}

static ddaebm_status call_explain(const ddaebm_model *m, const float *x, size_t n, size_t len,
                                  float *out, uint8_t *is_ood) {
  (void)is_ood;
  return ddaebm_explain(m, x, n, len, out);
}

static const scorer scorers[] = {
    {"ddaebm_energy", call_energy, true},
    {"ddaebm_screen", call_screen, false},
    {"ddaebm_pvalues", call_pvalues, true},
    {"ddaebm_explain", call_explain, true},
};

typedef enum { OUT_VALID, OUT_NULL, OUT_MISALIGNED } out_kind;

/* For expect_score_error: no row or column to look for in the message. */
#define NO_CELL SIZE_MAX

/* One failing scoring call: outputs are prefilled and must come back untouched, and the
 * message must be fresh (and name `bad_row`/`bad_col` when given, for non-finite input). */
static void expect_score_error(const scorer *sc, const char *what, ddaebm_status want,
                               const ddaebm_model *m, const float *x, size_t n_rows,
                               size_t row_len, out_kind out, size_t bad_row, size_t bad_col) {
  char label[128];
  snprintf(label, sizeof label, "%s (%s)", sc->name, what);
  /* Room for explain's rows × dim floats, plus one spare float so that a misaligned view
   * stays inside the buffer. */
  size_t out_len = fx.rows * fx.dim + 1;
  float *energy = xmalloc(out_len * sizeof *energy);
  uint8_t *is_ood = xmalloc(fx.rows);
  fill_sentinel(energy, out_len * sizeof *energy);
  fill_sentinel(is_ood, fx.rows);
  float *out_ptr = out == OUT_NULL ? NULL : out == OUT_MISALIGNED ? misaligned(energy) : energy;

  prime_last_error();
  expect_status(__FILE__, __LINE__, label, sc->call(m, x, n_rows, row_len, out_ptr, is_ood), want);
  const char *msg = ddaebm_last_error();
  CHECK(strncmp(msg, sc->name, strlen(sc->name)) == 0, "%s: message does not start with %s: \"%s\"",
        label, sc->name, msg);
  if (bad_row != NO_CELL) {
    CHECK(names_index(msg, "row", bad_row) && names_index(msg, "column", bad_col),
          "%s: message does not name row %zu, column %zu: \"%s\"", label, bad_row, bad_col, msg);
  }
  CHECK(is_sentinel(energy, out_len * sizeof *energy) && is_sentinel(is_ood, fx.rows),
        "%s wrote an output on failure", label);
  free(energy);
  free(is_ood);
}

static void check_scoring_errors(const ddaebm_model *m) {
  size_t n = fx.rows * fx.dim;
  float *bad = xmalloc(n * sizeof *bad);
  /* The rows shifted by one byte; one spare float keeps the shifted view inside. */
  float *shifted_buf = xmalloc((n + 1) * sizeof *shifted_buf);
  memcpy((char *)shifted_buf + 1, fx.x, n * sizeof *fx.x);
  const float *shifted = misaligned(shifted_buf);
  /* Non-finite values in the middle, at the start and in the last row. */
  const struct {
    const char *name;
    float value;
    size_t row, col;
  } non_finite[] = {
      {"NaN", NAN, fx.rows / 2 + 5, 2 % fx.dim},
      {"+Inf", INFINITY, 0, 0},
      {"-Inf", -INFINITY, fx.rows - 1, fx.dim - 1},
  };

  for (size_t s = 0; s < sizeof scorers / sizeof scorers[0]; s++) {
    const scorer *sc = &scorers[s];
    expect_score_error(sc, "NULL model", DDAEBM_ERR_NULL_ARGUMENT, NULL, fx.x, fx.rows, fx.dim,
                       OUT_VALID, NO_CELL, NO_CELL);
    expect_score_error(sc, "NULL x", DDAEBM_ERR_NULL_ARGUMENT, m, NULL, fx.rows, fx.dim,
                       OUT_VALID, NO_CELL, NO_CELL);
    if (sc->out_required) {
      expect_score_error(sc, "NULL output", DDAEBM_ERR_NULL_ARGUMENT, m, fx.x, fx.rows, fx.dim,
                         OUT_NULL, NO_CELL, NO_CELL);
    }
    expect_score_error(sc, "row_len dim - 1", DDAEBM_ERR_SHAPE_MISMATCH, m, fx.x, fx.rows,
                       fx.dim - 1, OUT_VALID, NO_CELL, NO_CELL);
    expect_score_error(sc, "row_len dim + 1", DDAEBM_ERR_SHAPE_MISMATCH, m, fx.x,
                       fx.rows * fx.dim / (fx.dim + 1), fx.dim + 1, OUT_VALID, NO_CELL, NO_CELL);
    expect_score_error(sc, "row_len 0", DDAEBM_ERR_SHAPE_MISMATCH, m, fx.x, fx.rows, 0,
                       OUT_VALID, NO_CELL, NO_CELL);
    expect_score_error(sc, "row_len 0, no rows", DDAEBM_ERR_SHAPE_MISMATCH, m, NULL, 0, 0,
                       OUT_VALID, NO_CELL, NO_CELL);
    for (size_t i = 0; i < sizeof non_finite / sizeof non_finite[0]; i++) {
      memcpy(bad, fx.x, n * sizeof *bad);
      bad[non_finite[i].row * fx.dim + non_finite[i].col] = non_finite[i].value;
      expect_score_error(sc, non_finite[i].name, DDAEBM_ERR_NON_FINITE, m, bad, fx.rows, fx.dim,
                         OUT_VALID, non_finite[i].row, non_finite[i].col);
    }
    expect_score_error(sc, "misaligned x", DDAEBM_ERR_INVALID_ARGUMENT, m, shifted, fx.rows,
                       fx.dim, OUT_VALID, NO_CELL, NO_CELL);
    expect_score_error(sc, "misaligned output", DDAEBM_ERR_INVALID_ARGUMENT, m, fx.x, fx.rows,
                       fx.dim, OUT_MISALIGNED, NO_CELL, NO_CELL);
    /* n_rows × row_len does not fit in size_t: refused before anything is read. */
    expect_score_error(sc, "size overflow", DDAEBM_ERR_INVALID_ARGUMENT, m, fx.x,
                       SIZE_MAX / fx.dim + 1, fx.dim, OUT_VALID, NO_CELL, NO_CELL);
  }
  free(bad);
  free(shifted_buf);
}

static void test_scoring_errors(void) { with_model(NULL, check_scoring_errors); }

/* One failing ddaebm_drift call: `*out` is prefilled and must come back untouched, and the
 * message must be fresh, start with "ddaebm_drift" (and name `bad_row`/`bad_col` when given). */
static void expect_drift_error(const char *what, ddaebm_status want, const ddaebm_model *m,
                               const float *x, size_t n_rows, size_t row_len, out_kind out,
                               size_t bad_row, size_t bad_col) {
  char label[128];
  snprintf(label, sizeof label, "ddaebm_drift (%s)", what);
  /* Room for a result shifted by one byte. */
  _Alignas(ddaebm_drift_result) unsigned char buf[sizeof(ddaebm_drift_result) * 2];
  ddaebm_drift_result *result = (ddaebm_drift_result *)(void *)buf;
  fill_sentinel(buf, sizeof buf);
  ddaebm_drift_result *out_ptr = out == OUT_NULL         ? NULL
                                 : out == OUT_MISALIGNED ? (ddaebm_drift_result *)(buf + 1)
                                                         : result;
  _Static_assert(_Alignof(ddaebm_drift_result) > 1, "the result must need alignment");

  prime_last_error();
  expect_status(__FILE__, __LINE__, label, ddaebm_drift(m, x, n_rows, row_len, out_ptr), want);
  const char *msg = ddaebm_last_error();
  CHECK(strncmp(msg, "ddaebm_drift:", strlen("ddaebm_drift:")) == 0,
        "%s: message does not start with \"ddaebm_drift:\": \"%s\"", label, msg);
  if (bad_row != NO_CELL) {
    CHECK(names_index(msg, "row", bad_row) && names_index(msg, "column", bad_col),
          "%s: message does not name row %zu, column %zu: \"%s\"", label, bad_row, bad_col, msg);
  }
  CHECK(is_sentinel(buf, sizeof buf), "%s wrote its output on failure", label);
}

static void check_drift_errors(const ddaebm_model *m) {
  size_t n = fx.rows * fx.dim;
  float *bad = xmalloc(n * sizeof *bad);
  float *shifted_buf = xmalloc((n + 1) * sizeof *shifted_buf);
  memcpy((char *)shifted_buf + 1, fx.x, n * sizeof *fx.x);
  const float *shifted = misaligned(shifted_buf);

  expect_drift_error("NULL model", DDAEBM_ERR_NULL_ARGUMENT, NULL, fx.x, fx.rows, fx.dim,
                     OUT_VALID, NO_CELL, NO_CELL);
  expect_drift_error("NULL x", DDAEBM_ERR_NULL_ARGUMENT, m, NULL, fx.rows, fx.dim, OUT_VALID,
                     NO_CELL, NO_CELL);
  expect_drift_error("NULL out", DDAEBM_ERR_NULL_ARGUMENT, m, fx.x, fx.rows, fx.dim, OUT_NULL,
                     NO_CELL, NO_CELL);
  /* out is required even for an empty batch, which is refused itself. */
  expect_drift_error("NULL out, no rows", DDAEBM_ERR_NULL_ARGUMENT, m, NULL, 0, fx.dim,
                     OUT_NULL, NO_CELL, NO_CELL);
  expect_drift_error("n_rows 0", DDAEBM_ERR_INVALID_ARGUMENT, m, fx.x, 0, fx.dim, OUT_VALID,
                     NO_CELL, NO_CELL);
  expect_drift_error("n_rows 0, x NULL", DDAEBM_ERR_INVALID_ARGUMENT, m, NULL, 0, fx.dim,
                     OUT_VALID, NO_CELL, NO_CELL);
  expect_drift_error("row_len dim - 1", DDAEBM_ERR_SHAPE_MISMATCH, m, fx.x, fx.rows, fx.dim - 1,
                     OUT_VALID, NO_CELL, NO_CELL);
  expect_drift_error("row_len dim + 1", DDAEBM_ERR_SHAPE_MISMATCH, m, fx.x,
                     fx.rows * fx.dim / (fx.dim + 1), fx.dim + 1, OUT_VALID, NO_CELL, NO_CELL);
  expect_drift_error("row_len 0, no rows", DDAEBM_ERR_SHAPE_MISMATCH, m, NULL, 0, 0, OUT_VALID,
                     NO_CELL, NO_CELL);
  const struct {
    const char *name;
    float value;
    size_t row, col;
  } non_finite[] = {
      {"NaN", NAN, fx.rows / 2 + 5, 2 % fx.dim},
      {"+Inf", INFINITY, 0, 0},
      {"-Inf", -INFINITY, fx.rows - 1, fx.dim - 1},
  };
  for (size_t i = 0; i < sizeof non_finite / sizeof non_finite[0]; i++) {
    memcpy(bad, fx.x, n * sizeof *bad);
    bad[non_finite[i].row * fx.dim + non_finite[i].col] = non_finite[i].value;
    expect_drift_error(non_finite[i].name, DDAEBM_ERR_NON_FINITE, m, bad, fx.rows, fx.dim,
                       OUT_VALID, non_finite[i].row, non_finite[i].col);
  }
  expect_drift_error("misaligned x", DDAEBM_ERR_INVALID_ARGUMENT, m, shifted, fx.rows, fx.dim,
                     OUT_VALID, NO_CELL, NO_CELL);
  expect_drift_error("misaligned out", DDAEBM_ERR_INVALID_ARGUMENT, m, fx.x, fx.rows, fx.dim,
                     OUT_MISALIGNED, NO_CELL, NO_CELL);
  expect_drift_error("size overflow", DDAEBM_ERR_INVALID_ARGUMENT, m, fx.x,
                     SIZE_MAX / fx.dim + 1, fx.dim, OUT_VALID, NO_CELL, NO_CELL);
  free(bad);
  free(shifted_buf);
}

static void test_drift_errors(void) { with_model(NULL, check_drift_errors); }

static void check_sample_errors(const ddaebm_model *m) {
  size_t n = fx.sample_rows * fx.dim;
  float *out = xmalloc((n + 1) * sizeof *out);
  fill_sentinel(out, (n + 1) * sizeof *out);
  EXPECT_ERR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm_sample(NULL, fx.sample_rows, 1, out, n));
  EXPECT_ERR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm_sample(NULL, 0, 1, out, n));
  EXPECT_ERR(DDAEBM_ERR_NULL_ARGUMENT, ddaebm_sample(m, fx.sample_rows, 1, NULL, n));
  EXPECT_ERR(DDAEBM_ERR_SHAPE_MISMATCH, ddaebm_sample(m, fx.sample_rows, 1, out, n - 1));
  EXPECT_ERR(DDAEBM_ERR_SHAPE_MISMATCH, ddaebm_sample(m, 1, 1, out, 0));
  EXPECT_ERR(DDAEBM_ERR_INVALID_ARGUMENT, ddaebm_sample(m, fx.sample_rows, 1, misaligned(out), n));
  EXPECT_ERR(DDAEBM_ERR_INVALID_ARGUMENT, ddaebm_sample(m, SIZE_MAX / fx.dim + 1, 1, out, n));
  CHECK(is_sentinel(out, (n + 1) * sizeof *out), "a failing ddaebm_sample wrote its output");
  free(out);
}

static void test_sample_errors(void) { with_model(NULL, check_sample_errors); }

/* ---- threads ---------------------------------------------------------------------------- */

/* Each thread's last error is its own: all threads fail at once, then read their messages. */
typedef struct {
  pthread_barrier_t *barrier;
  char missing[4096]; /* a per-thread file name */
  bool started_empty;
  ddaebm_status status;
  char message[MESSAGE_LEN];
} error_thread;

static void *error_thread_main(void *arg) {
  error_thread *t = arg;
  t->started_empty = ddaebm_last_error()[0] == '\0';
  pthread_barrier_wait(t->barrier);
  ddaebm_model *m = NULL;
  t->status = ddaebm_model_open(t->missing, NULL, &m);
  pthread_barrier_wait(t->barrier); /* every thread has failed before anyone reads */
  snprintf(t->message, sizeof t->message, "%s", ddaebm_last_error());
  return NULL;
}

static void test_last_error_per_thread(void) {
  pthread_barrier_t barrier;
  error_thread threads[N_THREADS];
  pthread_t ids[N_THREADS];
  pthread_barrier_init(&barrier, NULL, N_THREADS);
  prime_last_error();
  size_t started = 0;
  for (; started < N_THREADS; started++) {
    error_thread *t = &threads[started];
    char name[64];
    snprintf(name, sizeof name, "no-such-model-%zu.safetensors", started);
    fixture_path(&fx, name, t->missing, sizeof t->missing);
    t->barrier = &barrier;
    if (pthread_create(&ids[started], NULL, error_thread_main, t) != 0) break;
  }
  /* A thread that could not start would leave the others waiting at the barrier forever. */
  if (started < N_THREADS) {
    fprintf(stderr, "pthread_create failed\n");
    abort();
  }
  for (size_t i = 0; i < N_THREADS; i++) {
    pthread_join(ids[i], NULL);
    const char *own = strrchr(threads[i].missing, '/') + 1;
    CHECK(threads[i].started_empty, "thread %zu: last error not empty before any call", i);
    CHECK(threads[i].status == DDAEBM_ERR_IO, "thread %zu: %s", i,
          ddaebm_status_string(threads[i].status));
    CHECK(strstr(threads[i].message, own) != NULL, "thread %zu sees \"%s\", not its own error",
          i, threads[i].message);
  }
  CHECK(strstr(ddaebm_last_error(), PRIMER_FILE) != NULL,
        "other threads' errors changed this thread's message to \"%s\"", ddaebm_last_error());
  pthread_barrier_destroy(&barrier);
}

/* Many threads score and sample with one model; every result must match bit for bit. */
typedef struct {
  const ddaebm_model *m;
  uint64_t seed;           /* a second, per-thread sample seed */
  const float *own_sample; /* its single-threaded result */
  unsigned mismatches;
  ddaebm_status status; /* first failure */
  char message[MESSAGE_LEN];
} stress_thread;

static bool stress_failed(stress_thread *t, ddaebm_status s, const char *call) {
  if (s == DDAEBM_OK) return false;
  t->status = s;
  snprintf(t->message, sizeof t->message, "%s: %s", call, ddaebm_last_error());
  return true;
}

static void *stress_thread_main(void *arg) {
  stress_thread *t = arg;
  size_t rows = fx.rows, n = fx.sample_rows * fx.dim;
  float *energy = xmalloc(rows * sizeof *energy), *pvalue = xmalloc(rows * sizeof *pvalue);
  float *sample = xmalloc(n * sizeof *sample);
  uint8_t *is_ood = xmalloc(rows);
  for (int i = 0; i < iterations; i++) {
    if (stress_failed(t, ddaebm_energy(t->m, fx.x, rows, fx.dim, energy), "energy")) break;
    t->mismatches += memcmp(energy, fx.energy, rows * sizeof *energy) != 0;
    fill_sentinel(energy, rows * sizeof *energy);
    if (stress_failed(t, ddaebm_screen(t->m, fx.x, rows, fx.dim, energy, is_ood), "screen"))
      break;
    t->mismatches += memcmp(energy, fx.energy, rows * sizeof *energy) != 0;
    t->mismatches += memcmp(is_ood, fx.is_ood, rows) != 0;
    if (stress_failed(t, ddaebm_pvalues(t->m, fx.x, rows, fx.dim, pvalue), "pvalues")) break;
    t->mismatches += memcmp(pvalue, fx.pvalue, rows * sizeof *pvalue) != 0;
    ddaebm_drift_result drift;
    if (stress_failed(t, ddaebm_drift(t->m, fx.x, rows, fx.dim, &drift), "drift")) break;
    t->mismatches += memcmp(&drift.p_value, &fx.drift_all[0], sizeof drift.p_value) != 0 ||
                     memcmp(&drift.effect, &fx.drift_all[1], sizeof drift.effect) != 0 ||
                     memcmp(&drift.z, &fx.drift_all[2], sizeof drift.z) != 0;
    if (stress_failed(t, ddaebm_sample(t->m, fx.sample_rows, fx.sample_seed, sample, n),
                      "sample"))
      break;
    t->mismatches += memcmp(sample, fx.sample, n * sizeof *sample) != 0;
    if (stress_failed(t, ddaebm_sample(t->m, fx.sample_rows, t->seed, sample, n), "sample"))
      break;
    t->mismatches += memcmp(sample, t->own_sample, n * sizeof *sample) != 0;
  }
  free(energy);
  free(pvalue);
  free(sample);
  free(is_ood);
  return NULL;
}

static void check_shared_model(const ddaebm_model *m) {
  /* The single-threaded results: the fixture (checked first) and one sample per thread. */
  check_all(m);
  size_t n = fx.sample_rows * fx.dim;
  stress_thread threads[N_THREADS];
  pthread_t ids[N_THREADS];
  for (size_t i = 0; i < N_THREADS; i++) {
    float *own = xmalloc(n * sizeof *own);
    threads[i] = (stress_thread){.m = m, .seed = fx.sample_seed + 1 + i, .own_sample = own};
    EXPECT_OK(ddaebm_sample(m, fx.sample_rows, threads[i].seed, own, n));
  }
  size_t started = 0;
  for (; started < N_THREADS; started++) {
    if (pthread_create(&ids[started], NULL, stress_thread_main, &threads[started]) != 0) break;
  }
  CHECK(started == N_THREADS, "only %zu threads started", started);
  for (size_t i = 0; i < started; i++) {
    pthread_join(ids[i], NULL);
    CHECK(threads[i].status == DDAEBM_OK, "thread %zu: %s", i, threads[i].message);
    CHECK(threads[i].mismatches == 0, "thread %zu: %u results differ from single-threaded", i,
          threads[i].mismatches);
  }
  for (size_t i = 0; i < N_THREADS; i++) free((void *)threads[i].own_sample);
}

static void test_shared_model_pool_of_2(void) {
  ddaebm_open_options opts = ddaebm_open_options_default();
  opts.threads = 2;
  with_model(&opts, check_shared_model);
}

static void test_shared_model_pool_of_1(void) {
  ddaebm_open_options opts = ddaebm_open_options_default();
  opts.threads = 1;
  with_model(&opts, check_shared_model);
}

static void test_shared_model_global_pool(void) {
  ddaebm_open_options opts = ddaebm_open_options_default();
  opts.threads = 0;
  with_model(&opts, check_shared_model);
}

/* Models may be opened, used and freed concurrently, each with a pool of its own. */
typedef struct {
  unsigned mismatches;
  ddaebm_status status;
  char message[MESSAGE_LEN];
} open_thread;

static void *open_thread_main(void *arg) {
  open_thread *t = arg;
  char path[4096];
  ddaebm_open_options opts = ddaebm_open_options_default();
  opts.threads = 2;
  float *energy = xmalloc(fx.rows * sizeof *energy);
  for (int i = 0; i < iterations && t->status == DDAEBM_OK; i++) {
    ddaebm_model *m = NULL;
    t->status = ddaebm_model_open(fixture_path(&fx, "model.safetensors", path, sizeof path),
                                  &opts, &m);
    if (t->status == DDAEBM_OK) {
      t->status = ddaebm_energy(m, fx.x, fx.rows, fx.dim, energy);
      t->mismatches += t->status == DDAEBM_OK &&
                       memcmp(energy, fx.energy, fx.rows * sizeof *energy) != 0;
      ddaebm_model_free(m);
    }
    if (t->status != DDAEBM_OK) snprintf(t->message, sizeof t->message, "%s", ddaebm_last_error());
  }
  free(energy);
  return NULL;
}

static void test_open_concurrently(void) {
  open_thread threads[N_THREADS] = {0};
  pthread_t ids[N_THREADS];
  size_t started = 0;
  for (; started < N_THREADS; started++) {
    if (pthread_create(&ids[started], NULL, open_thread_main, &threads[started]) != 0) break;
  }
  CHECK(started == N_THREADS, "only %zu threads started", started);
  for (size_t i = 0; i < started; i++) {
    pthread_join(ids[i], NULL);
    CHECK(threads[i].status == DDAEBM_OK, "thread %zu: %s", i, threads[i].message);
    CHECK(threads[i].mismatches == 0, "thread %zu: %u energies differ", i,
          threads[i].mismatches);
  }
}

/* Mixed-call stress: DDAEBM_STRESS_THREADS threads share one model for DDAEBM_STRESS_SECONDS
 * and draw energy, screen, p-value, drift, sample and failing calls of varied sizes; every result must
 * equal, bit for bit, the one computed beforehand on one thread for the same call (same rows,
 * same batch size: a row's last bits may depend on the batch size, never on other threads). */
typedef enum {
  CALL_ENERGY,
  CALL_SCREEN,
  CALL_PVALUES,
  CALL_DRIFT,
  CALL_SAMPLE,
  CALL_NON_FINITE
} call_kind;

typedef struct {
  call_kind kind;
  const float *x; /* CALL_ENERGY/SCREEN/PVALUES/DRIFT/NON_FINITE: rows × dim */
  size_t rows;
  uint64_t seed;                  /* CALL_SAMPLE */
  float *want;                    /* energies, p-values or sample rows */
  uint8_t *want_flags;            /* CALL_SCREEN */
  ddaebm_drift_result want_drift; /* CALL_DRIFT */
} mixed_call;

enum { MAX_MIXED_CALLS = 32 };

typedef struct {
  const ddaebm_model *m;
  const mixed_call *calls;
  size_t n_calls;
  unsigned index; /* thread number */
  unsigned long done;
  unsigned mismatches;
  char message[MESSAGE_LEN]; /* first failure or mismatch */
} mixed_thread;

static void mixed_note(mixed_thread *t, const char *what, size_t call) {
  if (t->message[0] == '\0')
    snprintf(t->message, sizeof t->message, "call %zu: %s (last error \"%s\")", call, what,
             ddaebm_last_error());
  t->mismatches++;
}

/* Runs call `c` and compares with its reference; returns 0 on a match. */
static int run_mixed(const ddaebm_model *m, const mixed_call *c, float *buf, uint8_t *flags,
                     size_t buf_len, const char **what) {
  size_t n = c->kind == CALL_SAMPLE ? c->rows * fx.dim : c->rows;
  switch (c->kind) {
  case CALL_ENERGY:
    *what = "energy";
    return ddaebm_energy(m, c->x, c->rows, fx.dim, buf) != DDAEBM_OK ||
           memcmp(buf, c->want, n * sizeof *buf) != 0;
  case CALL_SCREEN:
    *what = "screen";
    return ddaebm_screen(m, c->x, c->rows, fx.dim, buf, flags) != DDAEBM_OK ||
           memcmp(buf, c->want, n * sizeof *buf) != 0 || memcmp(flags, c->want_flags, n) != 0;
  case CALL_PVALUES:
    *what = "pvalues";
    return ddaebm_pvalues(m, c->x, c->rows, fx.dim, buf) != DDAEBM_OK ||
           memcmp(buf, c->want, n * sizeof *buf) != 0;
  case CALL_DRIFT: {
    *what = "drift";
    ddaebm_drift_result got;
    memset(&got, 0, sizeof got);
    return ddaebm_drift(m, c->x, c->rows, fx.dim, &got) != DDAEBM_OK ||
           memcmp(&got, &c->want_drift, sizeof got) != 0;
  }
  case CALL_SAMPLE:
    *what = "sample";
    return ddaebm_sample(m, c->rows, c->seed, buf, buf_len) != DDAEBM_OK ||
           memcmp(buf, c->want, n * sizeof *buf) != 0;
  case CALL_NON_FINITE:
    *what = "NaN batch";
    return ddaebm_energy(m, c->x, c->rows, fx.dim, buf) != DDAEBM_ERR_NON_FINITE ||
           !names_index(ddaebm_last_error(), "row", c->rows - 1);
  }
  return 1;
}

static void *mixed_thread_main(void *arg) {
  mixed_thread *t = arg;
  size_t buf_len = 4 * fx.rows * fx.dim + fx.sample_rows * fx.dim;
  float *buf = xmalloc(buf_len * sizeof *buf);
  uint8_t *flags = xmalloc(4 * fx.rows);
  uint64_t state = 0x9E3779B97F4A7C15ull ^ (t->index + 1);
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    size_t i;
    if (t->done < t->n_calls) {
      i = (t->done + t->index) % t->n_calls; /* one full round first */
    } else {
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - start.tv_sec >= stress_seconds) break;
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      i = (size_t)(state % t->n_calls);
    }
    const char *what = "?";
    if (run_mixed(t->m, &t->calls[i], buf, flags, buf_len, &what) != 0) mixed_note(t, what, i);
    t->done++;
  }
  free(buf);
  free(flags);
  return NULL;
}

static void check_mixed_stress(const ddaebm_model *m) {
  mixed_call calls[MAX_MIXED_CALLS];
  size_t n_calls = 0;
  /* Batches: prefixes of the fixture rows, all of them four times over, and extreme rows. */
  size_t big = 4 * fx.rows;
  float *tiled = xmalloc(big * fx.dim * sizeof *tiled);
  for (size_t r = 0; r < 4; r++) {
    memcpy(tiled + r * fx.rows * fx.dim, fx.x, fx.rows * fx.dim * sizeof *tiled);
  }
  float *extreme = xmalloc(fx.rows * fx.dim * sizeof *extreme);
  memcpy(extreme, fx.x, fx.rows * fx.dim * sizeof *extreme);
  for (size_t r = 0; r < fx.rows; r += 3) extreme[r * fx.dim + r % fx.dim] = r % 2 ? 1e30f : -3e38f;
  float *nan_rows = xmalloc(fx.rows * fx.dim * sizeof *nan_rows);
  memcpy(nan_rows, fx.x, fx.rows * fx.dim * sizeof *nan_rows);
  nan_rows[(fx.rows - 1) * fx.dim] = NAN;

  const struct {
    const float *x;
    size_t rows;
  } batches[] = {{fx.x, 1}, {fx.x, 5}, {fx.x + fx.dim, fx.rows / 2}, {fx.x, fx.rows},
                 {tiled, big}, {extreme, fx.rows}};
  size_t all_rows_energy = 0, all_rows_drift = 0;
  for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
    for (call_kind k = CALL_ENERGY; k <= CALL_DRIFT; k++) {
      if (batches[b].x == fx.x && batches[b].rows == fx.rows) {
        if (k == CALL_ENERGY) all_rows_energy = n_calls;
        if (k == CALL_DRIFT) all_rows_drift = n_calls;
      }
      mixed_call *c = &calls[n_calls++];
      *c = (mixed_call){.kind = k, .x = batches[b].x, .rows = batches[b].rows};
      if (k == CALL_DRIFT) {
        /* Prefilled so that the whole struct, padding included, compares with memcmp. */
        memset(&c->want_drift, 0, sizeof c->want_drift);
        EXPECT_OK(ddaebm_drift(m, c->x, c->rows, fx.dim, &c->want_drift));
        continue;
      }
      c->want = xmalloc(c->rows * sizeof *c->want);
      c->want_flags = k == CALL_SCREEN ? xmalloc(c->rows) : NULL;
      if (k == CALL_ENERGY) EXPECT_OK(ddaebm_energy(m, c->x, c->rows, fx.dim, c->want));
      if (k == CALL_SCREEN)
        EXPECT_OK(ddaebm_screen(m, c->x, c->rows, fx.dim, c->want, c->want_flags));
      if (k == CALL_PVALUES) EXPECT_OK(ddaebm_pvalues(m, c->x, c->rows, fx.dim, c->want));
    }
  }
  const struct {
    size_t rows;
    uint64_t seed;
  } samples[] = {{1, 3}, {fx.sample_rows, fx.sample_seed}, {fx.sample_rows, 99}};
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    mixed_call *c = &calls[n_calls++];
    *c = (mixed_call){.kind = CALL_SAMPLE, .rows = samples[i].rows, .seed = samples[i].seed};
    c->want = xmalloc(c->rows * fx.dim * sizeof *c->want);
    EXPECT_OK(ddaebm_sample(m, c->rows, c->seed, c->want, c->rows * fx.dim));
  }
  calls[n_calls++] = (mixed_call){.kind = CALL_NON_FINITE, .x = nan_rows, .rows = fx.rows};
  /* The full-batch references are the fixture's, computed by the Rust library. */
  CHECK_SAME_F32("energy of all rows", calls[all_rows_energy].want, fx.energy, fx.rows);
  CHECK_DRIFT("drift of all rows", &calls[all_rows_drift].want_drift, fx.drift_all, fx.rows);

  mixed_thread *threads = calloc((size_t)stress_threads, sizeof *threads);
  pthread_t *ids = xmalloc((size_t)stress_threads * sizeof *ids);
  if (threads == NULL) abort();
  int started = 0;
  for (; started < stress_threads; started++) {
    threads[started] = (mixed_thread){.m = m, .calls = calls, .n_calls = n_calls,
                                      .index = (unsigned)started};
    if (pthread_create(&ids[started], NULL, mixed_thread_main, &threads[started]) != 0) break;
  }
  CHECK(started == stress_threads, "only %d threads started", started);
  unsigned long total = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(ids[i], NULL);
    total += threads[i].done;
    CHECK(threads[i].mismatches == 0, "thread %d: %u of %lu calls failed or differ; first: %s", i,
          threads[i].mismatches, threads[i].done, threads[i].message);
  }
  printf("# mixed stress: %d threads, %d s, %zu distinct calls, %lu calls made\n", started,
         stress_seconds, n_calls, total);
  for (size_t i = 0; i < n_calls; i++) {
    free(calls[i].want);
    free(calls[i].want_flags);
  }
  free(threads);
  free(ids);
  free(tiled);
  free(extreme);
  free(nan_rows);
}

static void test_mixed_stress_global_pool(void) { with_model(NULL, check_mixed_stress); }

static void test_mixed_stress_pool_of_2(void) {
  ddaebm_open_options opts = ddaebm_open_options_default();
  opts.threads = 2;
  with_model(&opts, check_mixed_stress);
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
    return 2;
  }
  const char *env = getenv("DDAEBM_TEST_ITERATIONS");
  if (env != NULL && (iterations = atoi(env)) < 1) {
    fprintf(stderr, "DDAEBM_TEST_ITERATIONS must be a positive number, not \"%s\"\n", env);
    return 2;
  }
  env = getenv("DDAEBM_STRESS_THREADS");
  if (env != NULL && ((stress_threads = atoi(env)) < 1 || stress_threads > 1024)) {
    fprintf(stderr, "DDAEBM_STRESS_THREADS must be in 1..1024, not \"%s\"\n", env);
    return 2;
  }
  env = getenv("DDAEBM_STRESS_SECONDS");
  if (env != NULL && (stress_seconds = atoi(env)) < 0) {
    fprintf(stderr, "DDAEBM_STRESS_SECONDS must be 0 or more, not \"%s\"\n", env);
    return 2;
  }
  char err[4200];
  if (!fixture_load(&fx, argv[1], err, sizeof err)) {
    fprintf(stderr, "cannot load the fixture: %s\n", err);
    return 2;
  }

  run_test("version", test_version);
  run_test("open_options_default", test_open_options_default);
  run_test("open_null_options", test_open_null_options);
  run_test("open_cpu_two_threads", test_open_cpu_two_threads);
  run_test("open_null_device_is_cpu", test_open_null_device_is_cpu);
  run_test("getters", test_getters);
  run_test("getters_on_null", test_getters_on_null);
  run_test("image_shape", test_image_shape);
  run_test("image_energy_matches_fixture", test_image_energy_matches_fixture);
  run_test("image_energy_pool_of_2", test_image_energy_pool_of_2);
  run_test("gcd_model_scores_and_samples", test_gcd_model_scores_and_samples);
  run_test("dcd_model_scores_and_samples", test_dcd_model_scores_and_samples);
  run_test("model_free_null", test_model_free_null);
  run_test("status_strings", test_status_strings);
  run_test("energy_matches_fixture", test_energy_matches_fixture);
  run_test("screen_matches_fixture", test_screen_matches_fixture);
  run_test("pvalues_matches_fixture", test_pvalues_matches_fixture);
  run_test("drift_matches_fixture", test_drift_matches_fixture);
  run_test("explain_matches_fixture", test_explain_matches_fixture);
  run_test("sample_matches_fixture", test_sample_matches_fixture);
  run_test("screen_optional_outputs", test_screen_optional_outputs);
  run_test("sample_seeds", test_sample_seeds);
  run_test("empty_batch", test_empty_batch);
  run_test("success_keeps_last_error", test_success_keeps_last_error);
  run_test("open_errors", test_open_errors);
  run_test("scoring_errors", test_scoring_errors);
  run_test("drift_errors", test_drift_errors);
  run_test("sample_errors", test_sample_errors);
  run_test("last_error_per_thread", test_last_error_per_thread);
  run_test("shared_model_pool_of_2", test_shared_model_pool_of_2);
  run_test("shared_model_pool_of_1", test_shared_model_pool_of_1);
  run_test("shared_model_global_pool", test_shared_model_global_pool);
  run_test("open_concurrently", test_open_concurrently);
  run_test("extreme_rows", test_extreme_rows);
  run_test("mixed_stress_global_pool", test_mixed_stress_global_pool);
  run_test("mixed_stress_pool_of_2", test_mixed_stress_pool_of_2);

  fixture_free(&fx);
  return finish_tests();
}
