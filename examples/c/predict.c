/*
 * Segments one image with an nnU-Net model through the nnunet-rt C API.
 *
 *   predict MODEL IMAGE.nii [-f FOLD]... [--disable-tta]
 *
 * MODEL is a model folder, or a bundle file (`nnunet-rt bundle -m MODEL_DIR -o model.nnrt`) that
 * is read into memory and loaded from there, as a host that decrypts its models would do.
 * Loads the model, reads the (uncompressed) NIfTI image, predicts it with progress on stderr,
 * and prints to stdout the voxel count of each label and, for a model with a classification
 * head, the predicted class and its probability:
 *
 *   label background 26352
 *   label pancreas 1192
 *   label lesion 56
 *   class subtype2 0.540775
 *
 * Build (from the repository root, after `cargo build`):
 *   cc -std=c99 -Iinclude examples/c/predict.c -Ltarget/debug -lnnunet_rt \
 *      -Wl,-rpath,$PWD/target/debug -lm -o predict
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnunet_rt.h"
#include "nifti1_reader.h"

#define MAX_FOLDS 16

/* Reads a whole file into memory (NULL on failure); the caller frees it. */
static unsigned char *read_file(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  unsigned char *bytes = NULL;
  long length;
  if (file == NULL) return NULL;
  if (fseek(file, 0, SEEK_END) == 0 && (length = ftell(file)) > 0 && fseek(file, 0, SEEK_SET) == 0 &&
      (bytes = (unsigned char *)malloc((size_t)length)) != NULL) {
    if (fread(bytes, 1, (size_t)length, file) == (size_t)length) {
      *size = (size_t)length;
    } else {
      free(bytes);
      bytes = NULL;
    }
  }
  fclose(file);
  return bytes;
}

/* Whether `path` names a bundle file rather than a model folder. */
static int is_bundle(const char *path) {
  size_t n = strlen(path);
  return n > 5 && strcmp(path + n - 5, ".nnrt") == 0;
}

/* Prints "stage percent" lines; returning 0 lets the prediction continue. */
static int32_t on_progress(uint32_t stage, double fraction, void *user_data) {
  static const char *const names[] = {"preprocess", "network", "export"};
  (void)user_data;
  fprintf(stderr, "%-10s %3.0f%%\n", stage < 3 ? names[stage] : "?", fraction * 100.0);
  return 0;
}

/* Jumps to `cleanup` with the library's message when a call fails. */
#define CHECK(call)                                                                           \
  do {                                                                                        \
    nnrt_status status_ = (call);                                                             \
    if (status_ != NNRT_OK) {                                                                 \
      fprintf(stderr, "predict: %s: %s\n", nnrt_status_str(status_), nnrt_last_error_message()); \
      goto cleanup;                                                                           \
    }                                                                                         \
  } while (0)

int main(int argc, char **argv) {
  const char *folds[MAX_FOLDS];
  size_t fold_count = 0;
  int tta = 1;
  int exit_code = 1;
  int i;
  nifti1_image image;
  char error[512];
  nnrt_options *load_options = NULL;
  nnrt_predict_options *predict_options = NULL;
  nnrt_model *model = NULL;
  nnrt_result *result = NULL;
  nnrt_volume volume;
  const void *labels = NULL;
  uint32_t label_type = 0;
  size_t dims[3], num_labels = 0, num_classes = 0, voxels, v;
  unsigned long long *counts = NULL;

  memset(&image, 0, sizeof image);
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL_DIR_OR_BUNDLE IMAGE.nii [-f FOLD]... [--disable-tta]\n", argv[0]);
    return 2;
  }
  for (i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--disable-tta") == 0) {
      tta = 0;
    } else if (strcmp(argv[i], "-f") == 0 && i + 1 < argc && fold_count < MAX_FOLDS) {
      folds[fold_count++] = argv[++i];
    } else {
      fprintf(stderr, "predict: unexpected argument %s\n", argv[i]);
      return 2;
    }
  }
  if (nnrt_abi_version() != NNRT_ABI_VERSION) {
    fprintf(stderr, "predict: the library's ABI %u does not match this header's %d\n", (unsigned)nnrt_abi_version(),
            NNRT_ABI_VERSION);
    return 1;
  }

  CHECK(nnrt_options_new(&load_options));
  if (fold_count > 0) CHECK(nnrt_options_set_folds(load_options, folds, fold_count));
  if (is_bundle(argv[1])) {
    size_t size = 0;
    unsigned char *bytes = read_file(argv[1], &size);
    nnrt_status status;
    if (bytes == NULL) {
      fprintf(stderr, "predict: cannot read %s\n", argv[1]);
      goto cleanup;
    }
    /* The library copies what it needs: the bytes can be wiped and freed right after. */
    status = nnrt_model_load_from_memory(bytes, size, load_options, &model);
    memset(bytes, 0, size);
    free(bytes);
    CHECK(status);
  } else {
    CHECK(nnrt_model_load(argv[1], load_options, &model));
  }

  if (nifti1_read(argv[2], &image, error, sizeof error) != 0) {
    fprintf(stderr, "predict: %s\n", error);
    goto cleanup;
  }
  memset(&volume, 0, sizeof volume);
  volume.struct_size = sizeof volume;
  volume.data = image.data;
  volume.dtype = image.dtype;
  volume.channels = image.channels;
  memcpy(volume.dims, image.dims, sizeof volume.dims);
  memcpy(volume.spacing, image.spacing, sizeof volume.spacing);
  memcpy(volume.origin, image.origin, sizeof volume.origin);
  memcpy(volume.direction, image.direction, sizeof volume.direction);

  CHECK(nnrt_predict_options_new(&predict_options));
  CHECK(nnrt_predict_options_set_tta(predict_options, tta));
  CHECK(nnrt_predict_options_set_progress(predict_options, on_progress, NULL));
  CHECK(nnrt_predict(model, &volume, predict_options, &result));

  CHECK(nnrt_result_labels(result, &labels, &label_type, dims));
  CHECK(nnrt_result_num_labels(result, &num_labels));
  counts = (unsigned long long *)calloc(num_labels, sizeof *counts);
  if (counts == NULL) {
    fprintf(stderr, "predict: out of memory\n");
    goto cleanup;
  }
  voxels = dims[0] * dims[1] * dims[2];
  for (v = 0; v < voxels; v++) {
    size_t value = label_type == NNRT_DTYPE_U8 ? ((const uint8_t *)labels)[v] : ((const uint16_t *)labels)[v];
    if (value < num_labels) counts[value]++;
  }
  for (v = 0; v < num_labels; v++) {
    const char *name = NULL;
    CHECK(nnrt_model_label_name(model, v, &name));
    printf("label %s %llu\n", name, counts[v]);
  }

  CHECK(nnrt_result_num_classes(result, &num_classes));
  if (num_classes > 0) {
    const double *probabilities = NULL;
    size_t count = 0, predicted = 0;
    const char *name = NULL;
    CHECK(nnrt_result_class_probabilities(result, &probabilities, &count));
    CHECK(nnrt_result_predicted_class(result, &predicted));
    CHECK(nnrt_result_class_name(result, predicted, &name));
    printf("class %s %.6f\n", name, probabilities[predicted]);
  }
  exit_code = 0;

cleanup:
  free(counts);
  nnrt_result_free(result);
  nnrt_predict_options_free(predict_options);
  nnrt_model_free(model);
  nnrt_options_free(load_options);
  nifti1_free(&image);
  return exit_code;
}
