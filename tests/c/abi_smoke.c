/*
 * Exercises the nnunet-rt C ABI from C99: every documented error path, NULL for every pointer
 * argument, the free functions, status names and versions, cancellation, a full prediction
 * with every accessor, and label metrics. Driven by tests/c_abi.rs (also under valgrind).
 *
 *   abi_smoke runtime HEAD_MODEL_DIR
 *       a wrong ONNX Runtime path gives NNRT_RUNTIME_UNAVAILABLE, then the default search works
 *       (must run before any other model load in the process: the runtime loads once per process)
 *   abi_smoke main HEAD_MODEL_DIR PLAIN_MODEL_DIR TRUNCATED_MODEL_DIR
 *       everything else; HEAD_MODEL_DIR has a classification head, PLAIN_MODEL_DIR has none,
 *       and TRUNCATED_MODEL_DIR is a copy with a truncated model.onnx. Every model must take
 *       one CT channel at spacing (0.75, 0.75, 2.0) mm with a fold named "0".
 *
 * Prints one line per failed check and a summary; exits nonzero when any check failed.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnunet_rt.h"

static int checks = 0;
static int failures = 0;

#define EXPECT(cond)                                                           \
  do {                                                                         \
    checks++;                                                                  \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

/* The call returns `expected`; a failure leaves a message, a success leaves the message of the
 * last failure as it was (only failures replace it). */
#define EXPECT_STATUS(call, expected)                                       \
  do {                                                                      \
    remember_last_error();                                                  \
    expect_status((call), (expected), #call, #expected, __LINE__);          \
  } while (0)

static char before[4096];

static void remember_last_error(void) { snprintf(before, sizeof before, "%s", nnrt_last_error_message()); }

static void expect_status(nnrt_status got, nnrt_status expected, const char *call, const char *name, int line) {
  const char *message = nnrt_last_error_message();
  checks++;
  if (got != expected) {
    failures++;
    fprintf(stderr, "%s:%d: %s returned %u (%s: %s), expected %s\n", __FILE__, line, call, (unsigned)got,
            nnrt_status_str(got), message, name);
  } else if (message == NULL || (got == NNRT_OK ? strncmp(message, before, sizeof before - 1) != 0 : message[0] == '\0')) {
    failures++;
    fprintf(stderr, "%s:%d: %s: last error message \"%s\" does not fit status %s (before: \"%s\")\n", __FILE__, line,
            call, message ? message : "(NULL)", name, before);
  }
}

/* A pointer value that is not NULL and never dereferenced: out-parameters must be reset. */
static int sentinel_storage;
#define SENTINEL ((void *)&sentinel_storage)

/* A CT-like int16 volume, 72 x 32 x 16 voxels at the models' spacing: two tiles along x. */
enum { NX = 72, NY = 32, NZ = 16, NVOX = NX * NY * NZ };
static int16_t ct[NVOX];
static float ct_float[2 * NVOX];

static void make_volume(nnrt_volume *v) {
  size_t x, y, z;
  for (z = 0; z < NZ; z++) {
    for (y = 0; y < NY; y++) {
      for (x = 0; x < NX; x++) {
        double dx = ((double)x - 36.0) / 20.0, dy = ((double)y - 16.0) / 10.0, dz = ((double)z - 8.0) / 5.0;
        double r = dx * dx + dy * dy + dz * dz;
        int16_t value = (int16_t)(r < 0.15 ? 120 : r < 1.0 ? 45 : -80 + (int)((x * 7 + y * 3 + z) % 11));
        ct[(z * NY + y) * NX + x] = value;
      }
    }
  }
  memset(v, 0, sizeof *v);
  v->struct_size = sizeof *v;
  v->data = ct;
  v->dtype = NNRT_DTYPE_I16;
  v->dims[0] = NX;
  v->dims[1] = NY;
  v->dims[2] = NZ;
  v->channels = 1;
  v->spacing[0] = 0.75;
  v->spacing[1] = 0.75;
  v->spacing[2] = 2.0;
  v->direction[0] = v->direction[4] = v->direction[8] = 1.0;
}

/* Progress recorder; `stop` picks when to cancel. */
enum { RUN_THROUGH, STOP_AT_START, STOP_AT_HALF, STOP_AT_END };
typedef struct progress_log {
  int stop;
  int calls;
  int calls_after_stop;
  int stopped;
  int out_of_order;
  uint32_t last_stage;
  double last_fraction;
} progress_log;

static int32_t record(uint32_t stage, double fraction, void *user_data) {
  progress_log *log = (progress_log *)user_data;
  int stop = 0;
  if (log->stopped) log->calls_after_stop++;
  if (stage > NNRT_STAGE_EXPORT || !(fraction >= 0.0 && fraction <= 1.0) ||
      (log->calls > 0 && (stage < log->last_stage || (stage == log->last_stage && fraction < log->last_fraction)))) {
    log->out_of_order++;
  }
  log->calls++;
  log->last_stage = stage;
  log->last_fraction = fraction;
  switch (log->stop) {
    case STOP_AT_START: stop = 1; break;
    case STOP_AT_HALF: stop = stage == NNRT_STAGE_NETWORK && fraction >= 0.5; break;
    case STOP_AT_END: stop = stage == NNRT_STAGE_EXPORT && fraction >= 1.0; break;
    default: break;
  }
  if (stop) log->stopped = 1;
  return stop;
}

static nnrt_model *load(const char *dir, const char *fold) {
  nnrt_options *options = NULL;
  nnrt_model *model = SENTINEL;
  EXPECT_STATUS(nnrt_options_new(&options), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_folds(options, &fold, 1), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_threads(options, 1), NNRT_OK);
  EXPECT_STATUS(nnrt_model_load(dir, options, &model), NNRT_OK);
  nnrt_options_free(options);
  return model;
}

static void runtime_unavailable(const char *model_dir) {
  nnrt_options *options = NULL;
  nnrt_model *model = SENTINEL;
  char not_a_library[4096];
  EXPECT_STATUS(nnrt_options_new(&options), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_ort_library(options, "/nonexistent/libonnxruntime.so"), NNRT_OK);
  EXPECT_STATUS(nnrt_model_load(model_dir, options, &model), NNRT_RUNTIME_UNAVAILABLE);
  EXPECT(model == NULL);
  EXPECT(strstr(nnrt_last_error_message(), "/nonexistent/libonnxruntime.so") != NULL);
  /* A file that exists but is no library. */
  snprintf(not_a_library, sizeof not_a_library, "%s/plans.json", model_dir);
  EXPECT_STATUS(nnrt_options_set_ort_library(options, not_a_library), NNRT_OK);
  model = SENTINEL;
  EXPECT_STATUS(nnrt_model_load(model_dir, options, &model), NNRT_RUNTIME_UNAVAILABLE);
  EXPECT(model == NULL);
  /* A failed load leaves nothing behind: the search (options NULL) still finds the runtime. */
  EXPECT_STATUS(nnrt_model_load(model_dir, NULL, &model), NNRT_OK);
  EXPECT(model != NULL);
  nnrt_model_free(model);
  nnrt_options_free(options);
}

static void versions_and_status_names(void) {
  char expected[64];
  const char *names[14];
  uint32_t code;
  size_t i, j;
  EXPECT(nnrt_abi_version() == NNRT_ABI_VERSION);
  snprintf(expected, sizeof expected, "nnunet-rt/%d.%d.%d ", NNRT_VERSION_MAJOR, NNRT_VERSION_MINOR, NNRT_VERSION_PATCH);
  EXPECT(nnrt_version() != NULL && strncmp(nnrt_version(), expected, strlen(expected)) == 0);
  EXPECT(NNRT_VERSION_NUMBER == NNRT_VERSION_MAJOR * 10000 + NNRT_VERSION_MINOR * 100 + NNRT_VERSION_PATCH);
  for (code = NNRT_OK; code <= NNRT_POISONED; code++) {
    names[code] = nnrt_status_str(code);
    EXPECT(names[code] != NULL && names[code][0] != '\0' && strcmp(names[code], "unknown status") != 0);
  }
  for (i = 0; i < 14; i++) {
    for (j = i + 1; j < 14; j++) EXPECT(strcmp(names[i], names[j]) != 0);
  }
  EXPECT(strcmp(nnrt_status_str(14), "unknown status") == 0);
  EXPECT(strcmp(nnrt_status_str(7000), "unknown status") == 0);
  EXPECT(strcmp(nnrt_status_str(UINT32_MAX), "unknown status") == 0);
}

static void free_null(void) {
  nnrt_model_free(NULL);
  nnrt_options_free(NULL);
  nnrt_predict_options_free(NULL);
  nnrt_result_free(NULL);
  nnrt_metrics_free(NULL);
  EXPECT(nnrt_last_error_message() != NULL);
}

/* NULL in each pointer position of each function, the others valid. */
static void null_arguments(nnrt_model *model, const nnrt_volume *volume, nnrt_result *result) {
  nnrt_options *options = NULL;
  nnrt_predict_options *predict_options = NULL;
  nnrt_model *model_out = SENTINEL;
  nnrt_result *result_out = SENTINEL;
  nnrt_volume no_data = *volume;
  const char *fold = "0";
  const char *folds_with_null[2];
  const char *text = NULL;
  const void *data = NULL;
  const float *floats = NULL;
  const double *doubles = NULL;
  uint32_t dtype = 0;
  size_t n = 0, dims[3];
  double xyz[3];

  EXPECT_STATUS(nnrt_options_new(NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_new(&options), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_device(NULL, NNRT_DEVICE_CPU, 0), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_threads(NULL, 1), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_tf32(NULL, 1), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_folds(NULL, &fold, 1), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_folds(options, NULL, 1), NNRT_NULL_ARGUMENT);
  folds_with_null[0] = "0";
  folds_with_null[1] = NULL;
  EXPECT_STATUS(nnrt_options_set_folds(options, folds_with_null, 2), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_folds(options, NULL, 0), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_ort_library(NULL, "/x/libonnxruntime.so"), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_ort_library(options, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_network_precision(NULL, NNRT_NETWORK_PRECISION_F32), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_openvino_library(NULL, "/x/plugin.so"), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_openvino_library(options, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_openvino_cache_dir(NULL, "/tmp"), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_openvino_cache_dir(options, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_postprocessing_file(NULL, "/x/postprocessing.json"), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_postprocessing_file(options, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_skip_postprocessing(NULL, 1), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_skip_postprocessing(options, 0), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_previous_stage_model(NULL, "/x/lowres"), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_previous_stage_model(options, "/x/lowres"), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_previous_stage_model(options, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_device_name(NULL, "cpu"), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_device_name(options, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_device_name(options, "tpu"), NNRT_INVALID_ARGUMENT);
  EXPECT(strstr(nnrt_last_error_message(), "auto, cpu, openvino") != NULL);
  EXPECT_STATUS(nnrt_options_set_device_name(options, "cuda:1"), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_device_name(options, "auto"), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_network_precision_name(NULL, "f32"), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_network_precision_name(options, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_network_precision_name(options, "fp16"), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_network_precision_name(options, "\xff"), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_network_precision_name(options, "f32"), NNRT_OK);

  EXPECT_STATUS(nnrt_model_load(NULL, options, &model_out), NNRT_NULL_ARGUMENT);
  EXPECT(model_out == NULL);
  EXPECT_STATUS(nnrt_model_load("/nonexistent/model", options, NULL), NNRT_NULL_ARGUMENT);

  EXPECT_STATUS(nnrt_model_num_channels(NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_channels(model, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_labels(NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_labels(model, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_label_name(NULL, 0, &text), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_label_name(model, 0, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_classes(NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_classes(model, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_class_name(NULL, 0, &text), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_class_name(model, 0, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_folds(NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_folds(model, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_fold_name(NULL, 0, &text), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_fold_name(model, 0, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_runtime_info(NULL, &text), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_runtime_info(model, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_spacing(NULL, xyz), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_spacing(model, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_patch_size(NULL, dims), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_patch_size(model, NULL), NNRT_NULL_ARGUMENT);

  EXPECT_STATUS(nnrt_predict_options_new(NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_new(&predict_options), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_step_size(NULL, 0.5), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_tta(NULL, 0), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_probabilities(NULL, 0), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy(NULL, NNRT_CLASSIFICATION_MEAN), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_precision(NULL, NNRT_PRECISION_SINGLE), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_memory_limit(NULL, 1), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_roi_focus(NULL, 1), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_progress(NULL, record, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_progress(predict_options, NULL, NULL), NNRT_OK);

  EXPECT_STATUS(nnrt_predict(NULL, volume, predict_options, &result_out), NNRT_NULL_ARGUMENT);
  EXPECT(result_out == NULL);
  result_out = SENTINEL;
  EXPECT_STATUS(nnrt_predict(model, NULL, predict_options, &result_out), NNRT_NULL_ARGUMENT);
  EXPECT(result_out == NULL);
  EXPECT_STATUS(nnrt_predict(model, volume, predict_options, NULL), NNRT_NULL_ARGUMENT);
  no_data.data = NULL;
  result_out = SENTINEL;
  EXPECT_STATUS(nnrt_predict(model, &no_data, predict_options, &result_out), NNRT_NULL_ARGUMENT);
  EXPECT(result_out == NULL);

  EXPECT_STATUS(nnrt_result_labels(NULL, &data, &dtype, dims), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_labels(result, NULL, &dtype, dims), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_labels(result, &data, NULL, dims), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_labels(result, &data, &dtype, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_num_labels(NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_num_labels(result, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_probabilities(NULL, &floats, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_probabilities(result, NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_probabilities(result, &floats, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_num_classes(NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_num_classes(result, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_class_probabilities(NULL, &doubles, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_class_probabilities(result, NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_class_probabilities(result, &doubles, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_predicted_class(NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_predicted_class(result, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_class_name(NULL, 0, &text), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_class_name(result, 0, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_timings_ms(NULL, xyz), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_timings_ms(result, NULL), NNRT_NULL_ARGUMENT);

  nnrt_predict_options_free(predict_options);
  nnrt_options_free(options);
}

/* Option values out of range. */
static void invalid_options(const char *model_dir) {
  nnrt_options *options = NULL;
  nnrt_predict_options *predict_options = NULL;
  nnrt_model *model = SENTINEL;
  const char *unknown_fold = "7";
  EXPECT_STATUS(nnrt_options_new(&options), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_device(options, 7, 0), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_device(options, NNRT_DEVICE_CUDA, -1), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_device(options, NNRT_DEVICE_CPU, 0), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_network_precision(options, 2), NNRT_INVALID_ARGUMENT);
  EXPECT(strstr(nnrt_last_error_message(), "NNRT_NETWORK_PRECISION_F32") != NULL);
  /* bf16 on ONNX Runtime's CPU provider cannot be honoured: refused at load, never run as f32. */
  EXPECT_STATUS(nnrt_options_set_network_precision(options, NNRT_NETWORK_PRECISION_BF16), NNRT_OK);
  EXPECT_STATUS(nnrt_model_load(model_dir, options, &model), NNRT_INVALID_ARGUMENT);
  EXPECT(model == NULL);
  EXPECT(strstr(nnrt_last_error_message(), "bf16") != NULL);
  model = SENTINEL;
  EXPECT_STATUS(nnrt_options_set_network_precision(options, NNRT_NETWORK_PRECISION_F32), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_ort_library(options, "\xff\xfe"), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_folds(options, &unknown_fold, 1), NNRT_OK);
  EXPECT_STATUS(nnrt_model_load(model_dir, options, &model), NNRT_INVALID_ARGUMENT);
  EXPECT(model == NULL);
  EXPECT(strstr(nnrt_last_error_message(), "7") != NULL);
  model = SENTINEL;
  EXPECT_STATUS(nnrt_model_load("\xff\xfe", NULL, &model), NNRT_INVALID_ARGUMENT);
  EXPECT(model == NULL);
  nnrt_options_free(options);

  /* A postprocessing file that is not there fails the load, naming it; skipping needs no file. */
  EXPECT_STATUS(nnrt_options_new(&options), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_device(options, NNRT_DEVICE_CPU, 0), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_postprocessing_file(options, "/nonexistent/postprocessing.json"), NNRT_OK);
  model = SENTINEL;
  EXPECT_STATUS(nnrt_model_load(model_dir, options, &model), NNRT_INVALID_MODEL);
  EXPECT(model == NULL);
  EXPECT(strstr(nnrt_last_error_message(), "/nonexistent/postprocessing.json") != NULL);
  EXPECT_STATUS(nnrt_options_set_postprocessing_file(options, "\xff\xfe"), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_options_set_postprocessing_file(options, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_skip_postprocessing(options, 1), NNRT_OK);
  EXPECT_STATUS(nnrt_model_load(model_dir, options, &model), NNRT_OK);
  nnrt_model_free(model);
  nnrt_options_free(options);

  EXPECT_STATUS(nnrt_predict_options_new(&predict_options), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_step_size(predict_options, 0.0), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_step_size(predict_options, 1.5), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_step_size(predict_options, nan("")), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_step_size(predict_options, 1.0), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy(predict_options, 9), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy_name(NULL, "mean"), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy_name(predict_options, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy_name(predict_options, "max"), NNRT_INVALID_ARGUMENT);
  EXPECT(strstr(nnrt_last_error_message(), "lesion-voxels") != NULL);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy_name(predict_options, "lesion-weighted"), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy(predict_options, NNRT_CLASSIFICATION_MEAN), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy(predict_options, NNRT_CLASSIFICATION_LESION_VOXELS), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_classification_policy(predict_options, NNRT_CLASSIFICATION_LESION_WEIGHTED), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_precision(predict_options, 7), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_precision(predict_options, NNRT_PRECISION_SINGLE), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_memory_limit(predict_options, 0), NNRT_OK);
  nnrt_predict_options_free(predict_options);
}

/* Model folders that cannot be loaded. */
static void bad_models(const char *truncated_dir) {
  nnrt_model *model = SENTINEL;
  EXPECT_STATUS(nnrt_model_load("/nonexistent/model", NULL, &model), NNRT_IO);
  EXPECT(model == NULL);
  EXPECT(strstr(nnrt_last_error_message(), "/nonexistent/model") != NULL);
  model = SENTINEL;
  EXPECT_STATUS(nnrt_model_load(truncated_dir, NULL, &model), NNRT_INVALID_MODEL);
  EXPECT(model == NULL);
  EXPECT(strstr(nnrt_last_error_message(), "model.onnx") != NULL);
}

/* Volumes the library must refuse, each with its status; *out stays NULL. */
static void bad_volumes(nnrt_model *model, const nnrt_volume *good, const nnrt_predict_options *options) {
  nnrt_result *result = SENTINEL;
  nnrt_volume v;
  size_t i;

#define EXPECT_REFUSED(expected)                                          \
  do {                                                                    \
    result = SENTINEL;                                                    \
    EXPECT_STATUS(nnrt_predict(model, &v, options, &result), expected);   \
    EXPECT(result == NULL);                                               \
  } while (0)

  v = *good;
  v.dtype = 0;
  EXPECT_REFUSED(NNRT_INVALID_ARGUMENT);
  v.dtype = 9;
  EXPECT_REFUSED(NNRT_INVALID_ARGUMENT);
  v.dtype = UINT32_MAX;
  EXPECT_REFUSED(NNRT_INVALID_ARGUMENT);

  v = *good;
  v.data = (const char *)good->data + 1; /* int16 voxels at an odd address */
  v.dims[0] = NX - 1;
  EXPECT_REFUSED(NNRT_INVALID_ARGUMENT);

  for (i = 0; i < 3; i++) {
    v = *good;
    v.dims[i] = 0;
    EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  }
  v = *good;
  v.channels = 0;
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  v = *good;
  v.dims[0] = v.dims[1] = v.dims[2] = SIZE_MAX / 2;
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);

  /* Two channels for a one-channel model. */
  for (i = 0; i < 2 * NVOX; i++) ct_float[i] = (float)ct[i % NVOX];
  v = *good;
  v.data = ct_float;
  v.dtype = NNRT_DTYPE_F32;
  v.channels = 2;
  EXPECT_REFUSED(NNRT_SHAPE_MISMATCH);

  v = *good;
  v.spacing[1] = nan("");
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  v = *good;
  v.spacing[2] = 0.0;
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  v = *good;
  v.spacing[0] = -0.75;
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  v = *good;
  v.origin[2] = INFINITY;
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  v = *good;
  v.direction[1] = 1.0; /* rows (1, 1, 0), (0, 1, 0), (0, 0, 1): not orthonormal */
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  EXPECT(strstr(nnrt_last_error_message(), "orthonormal") != NULL);
  v = *good;
  v.direction[0] = v.direction[4] = v.direction[8] = 2.0;
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);

  v = *good;
  v.data = ct_float;
  v.dtype = NNRT_DTYPE_F32;
  ct_float[(5 * NY + 6) * NX + 7] = (float)nan("");
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  EXPECT(strstr(nnrt_last_error_message(), "x=7, y=6, z=5") != NULL);
  ct_float[(5 * NY + 6) * NX + 7] = INFINITY;
  EXPECT_REFUSED(NNRT_INVALID_IMAGE);
  ct_float[(5 * NY + 6) * NX + 7] = 0.0f;
#undef EXPECT_REFUSED
}

/* Cancelling at the start, half way through the network stage, and at the last report. */
static void cancellation(nnrt_model *model, const nnrt_volume *volume, nnrt_predict_options *options) {
  const int stops[3] = {STOP_AT_START, STOP_AT_HALF, STOP_AT_END};
  size_t i;
  for (i = 0; i < 3; i++) {
    progress_log log;
    nnrt_result *result = SENTINEL;
    memset(&log, 0, sizeof log);
    log.stop = stops[i];
    EXPECT_STATUS(nnrt_predict_options_set_progress(options, record, &log), NNRT_OK);
    EXPECT_STATUS(nnrt_predict(model, volume, options, &result), NNRT_CANCELLED);
    EXPECT(result == NULL);
    EXPECT(log.stopped == 1 && log.calls_after_stop == 0 && log.out_of_order == 0);
    switch (stops[i]) {
      case STOP_AT_START: EXPECT(log.calls == 1 && log.last_stage == NNRT_STAGE_PREPROCESS); break;
      case STOP_AT_HALF: EXPECT(log.last_stage == NNRT_STAGE_NETWORK && log.last_fraction == 0.5); break;
      default: EXPECT(log.last_stage == NNRT_STAGE_EXPORT && log.last_fraction == 1.0); break;
    }
  }
  EXPECT_STATUS(nnrt_predict_options_set_progress(options, NULL, NULL), NNRT_OK);
}

/* A memory limit below the estimate refuses the prediction before any work; float32
 * accumulation predicts. */
static void memory_limit(nnrt_model *model, const nnrt_volume *volume, nnrt_predict_options *options) {
  nnrt_result *result = SENTINEL;
  progress_log log;
  memset(&log, 0, sizeof log);
  EXPECT_STATUS(nnrt_predict_options_set_progress(options, record, &log), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_memory_limit(options, 1024), NNRT_OK);
  EXPECT_STATUS(nnrt_predict(model, volume, options, &result), NNRT_OUT_OF_MEMORY);
  EXPECT(result == NULL && log.last_stage == NNRT_STAGE_PREPROCESS);
  EXPECT_STATUS(nnrt_predict_options_set_memory_limit(options, 0), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_progress(options, NULL, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_precision(options, NNRT_PRECISION_SINGLE), NNRT_OK);
  result = NULL;
  EXPECT_STATUS(nnrt_predict(model, volume, options, &result), NNRT_OK);
  EXPECT(result != NULL);
  nnrt_result_free(result);
  EXPECT_STATUS(nnrt_predict_options_set_precision(options, NNRT_PRECISION_HALF), NNRT_OK);
}

static void introspection(nnrt_model *head, nnrt_model *plain) {
  size_t n = 0, patch[3];
  double spacing[3];
  const char *text = NULL;
  EXPECT_STATUS(nnrt_model_num_channels(head, &n), NNRT_OK);
  EXPECT(n == 1);
  EXPECT_STATUS(nnrt_model_num_labels(head, &n), NNRT_OK);
  EXPECT(n == 3);
  EXPECT_STATUS(nnrt_model_label_name(head, 0, &text), NNRT_OK);
  EXPECT(text != NULL && strcmp(text, "background") == 0);
  EXPECT_STATUS(nnrt_model_label_name(head, 3, &text), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_classes(head, &n), NNRT_OK);
  EXPECT(n == 3);
  EXPECT_STATUS(nnrt_model_class_name(head, 0, &text), NNRT_OK);
  EXPECT(text != NULL && text[0] != '\0');
  EXPECT_STATUS(nnrt_model_class_name(head, n, &text), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_classes(plain, &n), NNRT_OK);
  EXPECT(n == 0);
  EXPECT_STATUS(nnrt_model_class_name(plain, 0, &text), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_model_num_folds(head, &n), NNRT_OK);
  EXPECT(n == 1);
  EXPECT_STATUS(nnrt_model_fold_name(head, 0, &text), NNRT_OK);
  EXPECT(text != NULL && strcmp(text, "0") == 0);
  EXPECT_STATUS(nnrt_model_fold_name(head, 1, &text), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_model_runtime_info(head, &text), NNRT_OK);
  EXPECT(text != NULL && text[0] == '{' && strstr(text, "\"execution_provider\":") != NULL);
  EXPECT(strstr(text, "\"network_precision\":\"f32\"") != NULL);
  EXPECT_STATUS(nnrt_model_spacing(head, spacing), NNRT_OK);
  EXPECT(spacing[0] == 0.75 && spacing[1] == 0.75 && spacing[2] == 2.0);
  EXPECT_STATUS(nnrt_model_patch_size(head, patch), NNRT_OK);
  EXPECT(patch[0] == 48 && patch[1] == 32 && patch[2] == 16);
}

/* nnrt_evaluate_labels on a predicted label map against itself, and its error paths. */
static void metrics(const nnrt_result *result) {
  nnrt_label_volume pred, reference, bad;
  nnrt_metrics *m = SENTINEL;
  const void *labels = NULL;
  const char *name = NULL;
  uint32_t dtype = 0;
  size_t dims[3], n = 0, i;
  double dice = -1.0, nsd = -1.0, hd95 = -1.0, msd = -1.0;

  EXPECT_STATUS(nnrt_result_labels(result, &labels, &dtype, dims), NNRT_OK);
  memset(&pred, 0, sizeof pred);
  pred.data = labels;
  pred.dtype = dtype;
  memcpy(pred.dims, dims, sizeof pred.dims);
  pred.spacing[0] = pred.spacing[1] = 0.75;
  pred.spacing[2] = 2.0;
  reference = pred;

  EXPECT_STATUS(nnrt_evaluate_labels(&pred, &reference, "pancreas=1,2;lesion=2", 2.0, &m), NNRT_OK);
  EXPECT(m != NULL && m != SENTINEL);
  if (m == NULL || m == SENTINEL) return;
  EXPECT_STATUS(nnrt_metrics_num_regions(m, &n), NNRT_OK);
  EXPECT(n == 2);
  for (i = 0; i < n; i++) {
    EXPECT_STATUS(nnrt_metrics_region(m, i, &name, &dice, &nsd, &hd95, &msd), NNRT_OK);
    EXPECT(dice == 1.0 && nsd == 1.0 && hd95 == 0.0 && msd == 0.0);
    EXPECT(name != NULL && strcmp(name, i == 0 ? "pancreas" : "lesion") == 0);
  }
  EXPECT_STATUS(nnrt_metrics_region(m, 0, &name, NULL, NULL, NULL, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_metrics_region(m, n, &name, &dice, NULL, NULL, NULL), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_metrics_num_regions(NULL, &n), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_metrics_num_regions(m, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_metrics_region(NULL, 0, &name, &dice, &nsd, &hd95, &msd), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_metrics_region(m, 0, NULL, &dice, &nsd, &hd95, &msd), NNRT_NULL_ARGUMENT);
  nnrt_metrics_free(m);

  /* One region per foreground label present when `regions` is NULL. */
  m = SENTINEL;
  EXPECT_STATUS(nnrt_evaluate_labels(&pred, &reference, NULL, 1.0, &m), NNRT_OK);
  if (m != NULL && m != SENTINEL) {
    EXPECT_STATUS(nnrt_metrics_num_regions(m, &n), NNRT_OK);
    EXPECT(n <= 2);
    nnrt_metrics_free(m);
  }

#define EXPECT_NO_METRICS(call, expected)   \
  do {                                      \
    m = SENTINEL;                           \
    EXPECT_STATUS(call, expected);          \
    EXPECT(m == NULL);                      \
  } while (0)

  EXPECT_NO_METRICS(nnrt_evaluate_labels(NULL, &reference, NULL, 2.0, &m), NNRT_NULL_ARGUMENT);
  EXPECT_NO_METRICS(nnrt_evaluate_labels(&pred, NULL, NULL, 2.0, &m), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_evaluate_labels(&pred, &reference, NULL, 2.0, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_NO_METRICS(nnrt_evaluate_labels(&pred, &reference, NULL, 0.0, &m), NNRT_INVALID_ARGUMENT);
  EXPECT_NO_METRICS(nnrt_evaluate_labels(&pred, &reference, NULL, nan(""), &m), NNRT_INVALID_ARGUMENT);
  EXPECT_NO_METRICS(nnrt_evaluate_labels(&pred, &reference, "not a region list", 2.0, &m), NNRT_INVALID_ARGUMENT);
  bad = reference;
  bad.dtype = NNRT_DTYPE_I16;
  EXPECT_NO_METRICS(nnrt_evaluate_labels(&pred, &bad, NULL, 2.0, &m), NNRT_INVALID_ARGUMENT);
  bad = reference;
  bad.dims[0] = dims[0] - 1;
  EXPECT_NO_METRICS(nnrt_evaluate_labels(&pred, &bad, NULL, 2.0, &m), NNRT_SHAPE_MISMATCH);
  bad = reference;
  bad.dims[2] = 0;
  EXPECT_NO_METRICS(nnrt_evaluate_labels(&pred, &bad, NULL, 2.0, &m), NNRT_INVALID_IMAGE);
  bad = reference;
  bad.spacing[1] = nan("");
  EXPECT_NO_METRICS(nnrt_evaluate_labels(&pred, &bad, NULL, 2.0, &m), NNRT_INVALID_IMAGE);
  /* A NULL data pointer inside the description is refused (its status is not pinned here). */
  bad = reference;
  bad.data = NULL;
  m = SENTINEL;
  EXPECT(nnrt_evaluate_labels(&pred, &bad, NULL, 2.0, &m) != NNRT_OK && m == NULL);
  EXPECT(strstr(nnrt_last_error_message(), "data") != NULL);
#undef EXPECT_NO_METRICS
}

/* A full prediction with probabilities, read through every accessor. */
static void full_prediction(nnrt_model *head, nnrt_model *plain, const nnrt_volume *volume, nnrt_predict_options *options) {
  nnrt_result *result = NULL, *plain_result = NULL;
  progress_log log;
  const void *labels = NULL;
  const float *probabilities = NULL;
  const double *classes = NULL;
  const char *text = NULL;
  uint32_t dtype = 0;
  size_t dims[3] = {0, 0, 0}, n = 0, count = 0, predicted = 0, v, c, mismatched = 0;
  double timings[3] = {-1.0, -1.0, -1.0}, sum;

  memset(&log, 0, sizeof log);
  EXPECT_STATUS(nnrt_predict_options_set_probabilities(options, 1), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_progress(options, record, &log), NNRT_OK);
  EXPECT_STATUS(nnrt_predict(head, volume, options, &result), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_progress(options, NULL, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_probabilities(options, 0), NNRT_OK);
  EXPECT(result != NULL);
  if (result == NULL) return;
  EXPECT(log.out_of_order == 0 && log.last_stage == NNRT_STAGE_EXPORT && log.last_fraction == 1.0);

  EXPECT_STATUS(nnrt_result_labels(result, &labels, &dtype, dims), NNRT_OK);
  EXPECT(labels != NULL && dtype == NNRT_DTYPE_U8 && dims[0] == NX && dims[1] == NY && dims[2] == NZ);
  EXPECT_STATUS(nnrt_result_num_labels(result, &n), NNRT_OK);
  EXPECT(n == 3);
  EXPECT_STATUS(nnrt_result_probabilities(result, &probabilities, &count), NNRT_OK);
  EXPECT(probabilities != NULL && count == n * NVOX);
  if (probabilities != NULL && count == n * NVOX && labels != NULL) {
    for (v = 0; v < NVOX; v++) {
      size_t best = 0;
      sum = 0.0;
      for (c = 0; c < n; c++) {
        sum += probabilities[c * NVOX + v];
        if (probabilities[c * NVOX + v] > probabilities[best * NVOX + v]) best = c;
      }
      if (fabs(sum - 1.0) > 1e-3 || best != ((const uint8_t *)labels)[v]) mismatched++;
    }
    EXPECT(mismatched <= NVOX / 1000); /* argmax ties may fall either way */
  }
  EXPECT_STATUS(nnrt_result_num_classes(result, &n), NNRT_OK);
  EXPECT(n == 3);
  EXPECT_STATUS(nnrt_result_class_probabilities(result, &classes, &count), NNRT_OK);
  EXPECT(classes != NULL && count == 3);
  EXPECT_STATUS(nnrt_result_predicted_class(result, &predicted), NNRT_OK);
  EXPECT(predicted < 3);
  if (classes != NULL && count == 3 && predicted < 3) {
    EXPECT(fabs(classes[0] + classes[1] + classes[2] - 1.0) < 1e-9);
    for (c = 0; c < 3; c++) EXPECT(classes[c] <= classes[predicted]);
  }
  EXPECT_STATUS(nnrt_result_class_name(result, predicted, &text), NNRT_OK);
  EXPECT(text != NULL && text[0] != '\0');
  EXPECT_STATUS(nnrt_result_class_name(result, 3, &text), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_result_timings_ms(result, timings), NNRT_OK);
  EXPECT(timings[0] >= 0.0 && timings[1] > 0.0 && timings[2] >= 0.0);

  /* Without a head or probabilities. */
  EXPECT_STATUS(nnrt_predict(plain, volume, options, &plain_result), NNRT_OK);
  if (plain_result != NULL) {
    EXPECT_STATUS(nnrt_result_probabilities(plain_result, &probabilities, &count), NNRT_OK);
    EXPECT(probabilities == NULL && count == 0);
    EXPECT_STATUS(nnrt_result_num_classes(plain_result, &n), NNRT_OK);
    EXPECT(n == 0);
    EXPECT_STATUS(nnrt_result_class_probabilities(plain_result, &classes, &count), NNRT_INVALID_ARGUMENT);
    EXPECT_STATUS(nnrt_result_predicted_class(plain_result, &predicted), NNRT_INVALID_ARGUMENT);
    EXPECT_STATUS(nnrt_result_class_name(plain_result, 0, &text), NNRT_INVALID_ARGUMENT);
  }

  /* The NULL checks and the metrics need a live result; then results outlive their model. */
  null_arguments(head, volume, result);
  metrics(result);
  nnrt_model_free(head);
  EXPECT_STATUS(nnrt_result_labels(result, &labels, &dtype, dims), NNRT_OK);
  EXPECT_STATUS(nnrt_result_class_name(result, predicted, &text), NNRT_OK);
  nnrt_result_free(result);
  nnrt_result_free(plain_result);
}

static int log_calls;

static void count_log(uint32_t level, const char *message, void *user_data) {
  if (level <= NNRT_LOG_ERROR && message != NULL && user_data == &log_calls) log_calls++;
}

/* A y-flipped, strided view of the test volume (the layout of a bottom-up image). */
static int16_t ct_flipped[NVOX];

/* Bundles from memory, cancel, estimates, strides, copies into the caller's buffer, names,
 * process information and logging. */
static void abi_1_0(nnrt_model *head, const char *head_dir, const char *bundle_path, const nnrt_volume *volume,
                    nnrt_predict_options *options) {
  FILE *file = NULL;
  nnrt_options *fold_0 = NULL;
  const char *fold = "0";
  unsigned char *bytes = NULL;
  long size = 0;
  nnrt_model *bundled = SENTINEL, *refused = SENTINEL;
  nnrt_result *from_folder = NULL, *from_bundle = NULL, *strided = NULL;
  nnrt_volume flipped = *volume, small = *volume;
  const void *labels = NULL, *bundle_labels = NULL, *strided_labels = NULL;
  const char *text = NULL, *other = NULL;
  uint32_t dtype = 0;
  size_t dims[3], n = 0, x, y, z;
  uint64_t estimate = 0;
  uint16_t copy16[NVOX];
  static int32_t copy32[NVOX];
  int64_t flip_strides[3] = {4, -4 * NX, 4 * NX * NY};
  size_t differing = 0;

  /* The head model's fold 0 as one bundle file, read back into memory. */
  EXPECT_STATUS(nnrt_options_new(&fold_0), NNRT_OK);
  EXPECT_STATUS(nnrt_options_set_folds(fold_0, &fold, 1), NNRT_OK);
  EXPECT_STATUS(nnrt_bundle_write(head_dir, fold_0, bundle_path), NNRT_OK);
  EXPECT_STATUS(nnrt_bundle_write(NULL, fold_0, bundle_path), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_bundle_write(head_dir, fold_0, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_bundle_write("/nonexistent/model", NULL, bundle_path), NNRT_IO);
  /* An ensemble of the same folder twice answers as the folder. */
  {
    const char *dirs[2];
    nnrt_model *ensemble = SENTINEL;
    nnrt_result *single = NULL, *averaged = NULL;
    const void *single_labels = NULL, *averaged_labels = NULL;
    uint32_t label_type = 0;
    size_t label_dims[3];
    dirs[0] = dirs[1] = head_dir;
    EXPECT_STATUS(nnrt_model_load_ensemble(dirs, 0, fold_0, &ensemble), NNRT_INVALID_ARGUMENT);
    EXPECT(ensemble == NULL);
    EXPECT_STATUS(nnrt_model_load_ensemble(NULL, 2, fold_0, &ensemble), NNRT_NULL_ARGUMENT);
    EXPECT_STATUS(nnrt_model_load_ensemble(dirs, 2, fold_0, &ensemble), NNRT_OK);
    if (ensemble != NULL && ensemble != SENTINEL) {
      EXPECT_STATUS(nnrt_predict(head, volume, options, &single), NNRT_OK);
      EXPECT_STATUS(nnrt_predict(ensemble, volume, options, &averaged), NNRT_OK);
      if (single != NULL && averaged != NULL) {
        EXPECT_STATUS(nnrt_result_labels(single, &single_labels, &label_type, label_dims), NNRT_OK);
        EXPECT_STATUS(nnrt_result_labels(averaged, &averaged_labels, &label_type, label_dims), NNRT_OK);
        EXPECT(memcmp(single_labels, averaged_labels, NVOX) == 0);
      }
      nnrt_result_free(single);
      nnrt_result_free(averaged);
      nnrt_model_free(ensemble);
    }
  }
  nnrt_options_free(fold_0);
  file = fopen(bundle_path, "rb");
  EXPECT(file != NULL);
  if (file == NULL) return;
  fseek(file, 0, SEEK_END);
  size = ftell(file);
  fseek(file, 0, SEEK_SET);
  bytes = (unsigned char *)malloc((size_t)size);
  EXPECT(bytes != NULL && fread(bytes, 1, (size_t)size, file) == (size_t)size);
  fclose(file);
  EXPECT_STATUS(nnrt_model_load_from_memory(bytes, (size_t)size - 1, NULL, &refused), NNRT_INVALID_MODEL);
  EXPECT(refused == NULL);
  EXPECT_STATUS(nnrt_model_load_from_memory("not a bundle", 12, NULL, &refused), NNRT_INVALID_MODEL);
  EXPECT_STATUS(nnrt_model_load_from_memory(NULL, 12, NULL, &refused), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_load_from_memory(bytes, (size_t)size, NULL, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_load_from_memory(bytes, (size_t)size, NULL, &bundled), NNRT_OK);
  /* The model keeps nothing of the caller's bytes. */
  memset(bytes, 0, (size_t)size);
  free(bytes);
  if (bundled == NULL || bundled == SENTINEL) return;

  /* A bundle predicts exactly what its folder predicts. */
  EXPECT_STATUS(nnrt_predict(head, volume, options, &from_folder), NNRT_OK);
  EXPECT_STATUS(nnrt_predict(bundled, volume, options, &from_bundle), NNRT_OK);
  if (from_folder == NULL || from_bundle == NULL) return;
  EXPECT_STATUS(nnrt_result_labels(from_folder, &labels, &dtype, dims), NNRT_OK);
  EXPECT_STATUS(nnrt_result_labels(from_bundle, &bundle_labels, &dtype, dims), NNRT_OK);
  EXPECT(memcmp(labels, bundle_labels, NVOX) == 0);

  /* The accumulation precision by name, as the command line spells it. */
  EXPECT_STATUS(nnrt_predict_options_set_precision_name(options, "double"), NNRT_INVALID_ARGUMENT);
  EXPECT(strstr(nnrt_last_error_message(), "half or single") != NULL);
  EXPECT_STATUS(nnrt_predict_options_set_precision_name(options, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_precision_name(options, "single"), NNRT_OK);
  EXPECT_STATUS(nnrt_predict_options_set_precision_name(options, "half"), NNRT_OK);

  /* Cancelling when nothing runs does nothing. */
  EXPECT_STATUS(nnrt_cancel(NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_cancel(bundled), NNRT_OK);

  /* The estimate is what the memory limit compares with: at the estimate it predicts, one byte
   * below it refuses. */
  EXPECT_STATUS(nnrt_estimate_peak_bytes(head, volume, options, &estimate), NNRT_OK);
  EXPECT(estimate > (uint64_t)NVOX);
  EXPECT_STATUS(nnrt_estimate_peak_bytes(NULL, volume, options, &estimate), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_estimate_peak_bytes(head, NULL, options, &estimate), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_estimate_peak_bytes(head, volume, options, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_predict_options_set_memory_limit(options, estimate - 1), NNRT_OK);
  EXPECT_STATUS(nnrt_predict(bundled, volume, options, &strided), NNRT_OUT_OF_MEMORY);
  EXPECT(strided == NULL);
  EXPECT_STATUS(nnrt_predict_options_set_memory_limit(options, estimate), NNRT_OK);
  EXPECT_STATUS(nnrt_predict(bundled, volume, options, &strided), NNRT_OK);
  nnrt_result_free(strided);
  strided = NULL;
  EXPECT_STATUS(nnrt_predict_options_set_memory_limit(options, 0), NNRT_OK);

  /* A bottom-up copy described by strides predicts the same labels. */
  for (z = 0; z < NZ; z++)
    for (y = 0; y < NY; y++)
      for (x = 0; x < NX; x++) ct_flipped[(z * NY + (NY - 1 - y)) * NX + x] = ct[(z * NY + y) * NX + x];
  flipped.data = &ct_flipped[(NY - 1) * NX];
  flipped.byte_strides[0] = 2;
  flipped.byte_strides[1] = -2 * NX;
  flipped.byte_strides[2] = 2 * NX * NY;
  EXPECT_STATUS(nnrt_predict(bundled, &flipped, options, &strided), NNRT_OK);
  if (strided != NULL) {
    EXPECT_STATUS(nnrt_result_labels(strided, &strided_labels, &dtype, dims), NNRT_OK);
    EXPECT(memcmp(labels, strided_labels, NVOX) == 0);
    nnrt_result_free(strided);
  }
  small.struct_size = sizeof small - 8;
  strided = SENTINEL;
  EXPECT_STATUS(nnrt_predict(bundled, &small, options, &strided), NNRT_INVALID_ARGUMENT);
  EXPECT(strided == NULL && strstr(nnrt_last_error_message(), "struct_size") != NULL);

  /* Labels into the caller's buffers: packed uint16, and bottom-up int32 through strides. */
  EXPECT_STATUS(nnrt_result_copy_labels(from_folder, copy16, NNRT_DTYPE_U16, NULL), NNRT_OK);
  EXPECT_STATUS(nnrt_result_copy_labels(from_folder, &copy32[(NY - 1) * NX], NNRT_DTYPE_I32, flip_strides), NNRT_OK);
  for (z = 0; z < NZ; z++) {
    for (y = 0; y < NY; y++) {
      for (x = 0; x < NX; x++) {
        uint8_t label = ((const uint8_t *)labels)[(z * NY + y) * NX + x];
        differing += copy16[(z * NY + y) * NX + x] != label;
        differing += copy32[(z * NY + (NY - 1 - y)) * NX + x] != (int32_t)label;
      }
    }
  }
  EXPECT(differing == 0);
  EXPECT_STATUS(nnrt_result_copy_labels(NULL, copy16, NNRT_DTYPE_U16, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_copy_labels(from_folder, NULL, NNRT_DTYPE_U16, NULL), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_result_copy_labels(from_folder, copy16, 99, NULL), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_result_copy_labels(from_folder, (char *)copy16 + 1, NNRT_DTYPE_U16, NULL), NNRT_INVALID_ARGUMENT);

  /* Names from the model and the result. */
  EXPECT_STATUS(nnrt_result_num_labels(from_folder, &n), NNRT_OK);
  EXPECT_STATUS(nnrt_result_label_name(from_folder, n - 1, &text), NNRT_OK);
  EXPECT_STATUS(nnrt_model_label_name(head, n - 1, &other), NNRT_OK);
  EXPECT(text != NULL && other != NULL && strcmp(text, other) == 0);
  EXPECT_STATUS(nnrt_result_label_name(from_folder, n, &text), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_result_label_name(NULL, 0, &text), NNRT_NULL_ARGUMENT);
  EXPECT_STATUS(nnrt_model_channel_name(head, 0, &text), NNRT_OK);
  EXPECT(text != NULL && strcmp(text, "CT") == 0);
  EXPECT_STATUS(nnrt_model_channel_name(head, 1, &text), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_model_channel_name(head, 0, NULL), NNRT_NULL_ARGUMENT);

  /* What the process has. */
  EXPECT_STATUS(nnrt_runtime_info(&text), NNRT_OK);
  EXPECT(text != NULL && text[0] == '{' && strstr(text, "\"abi_version\":2") != NULL);
  EXPECT(strstr(text, "\"onnxruntime_library\":\"") != NULL && strstr(text, "CPUExecutionProvider") != NULL);
  EXPECT_STATUS(nnrt_runtime_info(NULL), NNRT_NULL_ARGUMENT);

  /* Messages reach the host's logger, and stop when it is removed. */
  EXPECT_STATUS(nnrt_set_log_callback(count_log, &log_calls, 7), NNRT_INVALID_ARGUMENT);
  EXPECT_STATUS(nnrt_set_log_callback(count_log, &log_calls, NNRT_LOG_INFO), NNRT_OK);
  nnrt_result_free(from_bundle);
  from_bundle = NULL;
  EXPECT_STATUS(nnrt_predict(bundled, volume, options, &from_bundle), NNRT_OK);
  EXPECT(log_calls > 0);
  EXPECT_STATUS(nnrt_set_log_callback(NULL, NULL, NNRT_LOG_ERROR), NNRT_OK);
  n = (size_t)log_calls;
  nnrt_result_free(from_bundle);
  from_bundle = NULL;
  EXPECT_STATUS(nnrt_predict(bundled, volume, options, &from_bundle), NNRT_OK);
  EXPECT((size_t)log_calls == n);

  nnrt_result_free(from_bundle);
  nnrt_result_free(from_folder);
  nnrt_model_free(bundled);
}

int main(int argc, char **argv) {
  nnrt_volume volume;
  nnrt_predict_options *options = NULL;
  nnrt_model *head, *plain;
  const char *mode = argc > 1 ? argv[1] : "";

  if (strcmp(mode, "runtime") == 0 && argc == 3) {
    runtime_unavailable(argv[2]);
  } else if (strcmp(mode, "main") == 0 && argc == 6) {
    versions_and_status_names();
    free_null();
    make_volume(&volume);
    bad_models(argv[4]);
    invalid_options(argv[2]);
    head = load(argv[2], "0");
    plain = load(argv[3], "0");
    if (head != NULL && plain != NULL) {
      EXPECT_STATUS(nnrt_predict_options_new(&options), NNRT_OK);
      EXPECT_STATUS(nnrt_predict_options_set_tta(options, 0), NNRT_OK);
      introspection(head, plain);
      bad_volumes(head, &volume, options);
      cancellation(head, &volume, options);
      memory_limit(head, &volume, options);
      abi_1_0(head, argv[2], argv[5], &volume, options);
      full_prediction(head, plain, &volume, options); /* frees head */
      nnrt_predict_options_free(options);
    } else {
      nnrt_model_free(head);
    }
    nnrt_model_free(plain);
  } else {
    fprintf(stderr, "usage: %s runtime HEAD_MODEL_DIR | main HEAD_MODEL_DIR PLAIN_MODEL_DIR TRUNCATED_MODEL_DIR HEAD_BUNDLE\n", argv[0]);
    return 2;
  }
  printf("abi_smoke %s: %d checks, %d failed\n", mode, checks, failures);
  return failures == 0 ? 0 : 1;
}
