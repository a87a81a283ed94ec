/*
 * A small NIfTI-1 reader for the examples: one uncompressed single-file image (`.nii`, magic
 * "n+1"), 3-D or 4-D with the fourth axis holding channels, read into a buffer that can be
 * handed to nnrt_predict as it is.
 *
 * It reads the file the way nnunet-rt's own reader (and nnU-Net's SimpleITK reader) sees it:
 *  - voxels keep their stored type (uint8, int8, uint16, int16, uint32, int32, float32,
 *    float64); when the header asks for scaling (scl_slope not 0, and not the identity), they
 *    become float32 `value * scl_slope + scl_inter`, computed in double;
 *  - dims are (x, y, z), x fastest, channels one after the other: exactly the file's data order;
 *  - spacing is |pixdim[1..3]|; origin and direction come from the sform when its code is set,
 *    else the qform, else identity, in ITK's LPS convention.
 * Anything else (compressed files, .hdr/.img pairs, 5-D and higher, complex or RGB voxels,
 * truncated data) is refused with a message.
 *
 * Header-only; compiles as C99 and as C++ (the C++ example includes it too).
 */

#ifndef NNRT_EXAMPLE_NIFTI1_READER_H
#define NNRT_EXAMPLE_NIFTI1_READER_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnunet_rt.h"

/** An image read from disk. `data` is allocated with malloc; release with nifti1_free. */
typedef struct nifti1_image {
  void *data;
  uint32_t dtype; /* NNRT_DTYPE_* */
  size_t dims[3]; /* x, y, z */
  size_t channels;
  double spacing[3];
  double origin[3];
  double direction[9]; /* row-major, columns are the axis directions */
} nifti1_image;

/* Byte offsets of the fields used, in the 348-byte NIfTI-1 header. */
enum {
  NIFTI1_HEADER_SIZE = 348,
  NIFTI1_OFF_DIM = 40,
  NIFTI1_OFF_DATATYPE = 70,
  NIFTI1_OFF_BITPIX = 72,
  NIFTI1_OFF_PIXDIM = 76,
  NIFTI1_OFF_VOX_OFFSET = 108,
  NIFTI1_OFF_SCL_SLOPE = 112,
  NIFTI1_OFF_SCL_INTER = 116,
  NIFTI1_OFF_QFORM_CODE = 252,
  NIFTI1_OFF_SFORM_CODE = 254,
  NIFTI1_OFF_QUATERN_B = 256,
  NIFTI1_OFF_SROW_X = 280,
  NIFTI1_OFF_MAGIC = 344
};

static inline void nifti1_swap(unsigned char *bytes, size_t size) {
  size_t i;
  for (i = 0; i < size / 2; i++) {
    unsigned char t = bytes[i];
    bytes[i] = bytes[size - 1 - i];
    bytes[size - 1 - i] = t;
  }
}

static inline int16_t nifti1_i16(const unsigned char *header, size_t offset, int swap) {
  unsigned char b[2];
  int16_t v;
  memcpy(b, header + offset, 2);
  if (swap) nifti1_swap(b, 2);
  memcpy(&v, b, 2);
  return v;
}

static inline int32_t nifti1_i32(const unsigned char *header, size_t offset, int swap) {
  unsigned char b[4];
  int32_t v;
  memcpy(b, header + offset, 4);
  if (swap) nifti1_swap(b, 4);
  memcpy(&v, b, 4);
  return v;
}

static inline float nifti1_f32(const unsigned char *header, size_t offset, int swap) {
  unsigned char b[4];
  float v;
  memcpy(b, header + offset, 4);
  if (swap) nifti1_swap(b, 4);
  memcpy(&v, b, 4);
  return v;
}

/* NIfTI datatype code -> NNRT_DTYPE_* and element size; 0 when unsupported. */
static inline uint32_t nifti1_dtype(int16_t datatype, size_t *size) {
  switch (datatype) {
    case 2: *size = 1; return NNRT_DTYPE_U8;
    case 256: *size = 1; return NNRT_DTYPE_I8;
    case 512: *size = 2; return NNRT_DTYPE_U16;
    case 4: *size = 2; return NNRT_DTYPE_I16;
    case 768: *size = 4; return NNRT_DTYPE_U32;
    case 8: *size = 4; return NNRT_DTYPE_I32;
    case 16: *size = 4; return NNRT_DTYPE_F32;
    case 64: *size = 8; return NNRT_DTYPE_F64;
    default: *size = 0; return 0;
  }
}

/* Element i of a typed buffer as double (exact for every supported type). */
static inline double nifti1_value(const void *data, uint32_t dtype, size_t i) {
  switch (dtype) {
    case NNRT_DTYPE_U8: return (double)((const uint8_t *)data)[i];
    case NNRT_DTYPE_I8: return (double)((const int8_t *)data)[i];
    case NNRT_DTYPE_U16: return (double)((const uint16_t *)data)[i];
    case NNRT_DTYPE_I16: return (double)((const int16_t *)data)[i];
    case NNRT_DTYPE_U32: return (double)((const uint32_t *)data)[i];
    case NNRT_DTYPE_I32: return (double)((const int32_t *)data)[i];
    case NNRT_DTYPE_F32: return (double)((const float *)data)[i];
    default: return ((const double *)data)[i];
  }
}

/* Origin and direction (LPS) from the sform, the qform, or the pixdim scaling. */
static inline void nifti1_geometry(const unsigned char *h, int swap, nifti1_image *image) {
  double linear[3][3];
  double offset[3] = {0.0, 0.0, 0.0};
  const double lps[3] = {-1.0, -1.0, 1.0};
  int row, col, k;
  if (nifti1_i16(h, NIFTI1_OFF_SFORM_CODE, swap) > 0) {
    for (row = 0; row < 3; row++) {
      for (col = 0; col < 3; col++) {
        linear[row][col] = (double)nifti1_f32(h, NIFTI1_OFF_SROW_X + 16 * row + 4 * col, swap);
      }
      offset[row] = (double)nifti1_f32(h, NIFTI1_OFF_SROW_X + 16 * row + 12, swap);
    }
  } else if (nifti1_i16(h, NIFTI1_OFF_QFORM_CODE, swap) > 0) {
    double b = (double)nifti1_f32(h, NIFTI1_OFF_QUATERN_B, swap);
    double c = (double)nifti1_f32(h, NIFTI1_OFF_QUATERN_B + 4, swap);
    double d = (double)nifti1_f32(h, NIFTI1_OFF_QUATERN_B + 8, swap);
    double a = 1.0 - (b * b + c * c + d * d);
    double qfac = nifti1_f32(h, NIFTI1_OFF_PIXDIM, swap) < 0.0f ? -1.0 : 1.0;
    double r[3][3];
    a = a > 0.0 ? sqrt(a) : 0.0;
    r[0][0] = a * a + b * b - c * c - d * d;
    r[0][1] = 2.0 * (b * c - a * d);
    r[0][2] = 2.0 * (b * d + a * c);
    r[1][0] = 2.0 * (b * c + a * d);
    r[1][1] = a * a + c * c - b * b - d * d;
    r[1][2] = 2.0 * (c * d - a * b);
    r[2][0] = 2.0 * (b * d - a * c);
    r[2][1] = 2.0 * (c * d + a * b);
    r[2][2] = a * a + d * d - c * c - b * b;
    for (row = 0; row < 3; row++) {
      for (col = 0; col < 3; col++) {
        linear[row][col] = r[row][col] * image->spacing[col] * (col == 2 ? qfac : 1.0);
      }
      offset[row] = (double)nifti1_f32(h, NIFTI1_OFF_QUATERN_B + 12 + 4 * row, swap);
    }
  } else {
    for (row = 0; row < 3; row++) {
      for (col = 0; col < 3; col++) {
        linear[row][col] = row == col ? image->spacing[col] : 0.0;
      }
    }
  }
  for (col = 0; col < 3; col++) {
    double norm = 0.0;
    for (k = 0; k < 3; k++) norm += linear[k][col] * linear[k][col];
    norm = sqrt(norm);
    for (row = 0; row < 3; row++) {
      image->direction[row * 3 + col] = norm > 0.0 ? lps[row] * linear[row][col] / norm : 0.0;
    }
  }
  for (row = 0; row < 3; row++) image->origin[row] = lps[row] * offset[row];
}

static inline void nifti1_free(nifti1_image *image) {
  if (image != NULL) {
    free(image->data);
    image->data = NULL;
  }
}

/*
 * Reads `path` into `*image`. Returns 0 on success; otherwise nonzero, with a one-line reason in
 * `error` (of `error_size` bytes) and nothing to free.
 */
static inline int nifti1_read(const char *path, nifti1_image *image, char *error, size_t error_size) {
  unsigned char h[NIFTI1_HEADER_SIZE];
  FILE *file = NULL;
  int swap = 0;
  int rank, i;
  size_t sizes[7] = {1, 1, 1, 1, 1, 1, 1};
  size_t element_size = 0, voxels = 1, bytes;
  uint32_t dtype;
  double vox_offset, slope, inter;
  unsigned char *raw = NULL;

  memset(image, 0, sizeof *image);
  file = fopen(path, "rb");
  if (file == NULL) {
    snprintf(error, error_size, "cannot open %s", path);
    return 1;
  }
  if (fread(h, 1, sizeof h, file) != sizeof h) {
    snprintf(error, error_size, "%s: shorter than a NIfTI-1 header (348 bytes)", path);
    goto fail;
  }
  if (h[0] == 0x1f && h[1] == 0x8b) {
    snprintf(error, error_size, "%s is gzip-compressed; decompress it first (gunzip -k)", path);
    goto fail;
  }
  if (nifti1_i32(h, 0, 0) != NIFTI1_HEADER_SIZE) {
    swap = 1;
    if (nifti1_i32(h, 0, 1) != NIFTI1_HEADER_SIZE) {
      snprintf(error, error_size, "%s: not a NIfTI-1 file (sizeof_hdr is not 348)", path);
      goto fail;
    }
  }
  if (memcmp(h + NIFTI1_OFF_MAGIC, "n+1", 4) != 0) {
    snprintf(error, error_size, "%s: only single-file NIfTI-1 images (magic \"n+1\") are supported", path);
    goto fail;
  }
  rank = nifti1_i16(h, NIFTI1_OFF_DIM, swap);
  if (rank < 1 || rank > 7) {
    snprintf(error, error_size, "%s: dim[0] = %d is not a valid rank", path, rank);
    goto fail;
  }
  for (i = 0; i < rank; i++) {
    int16_t d = nifti1_i16(h, NIFTI1_OFF_DIM + 2 * (i + 1), swap);
    if (d < 1) {
      snprintf(error, error_size, "%s: dim[%d] = %d; every size must be at least 1", path, i + 1, d);
      goto fail;
    }
    sizes[i] = (size_t)d;
  }
  if (sizes[4] > 1 || sizes[5] > 1 || sizes[6] > 1) {
    snprintf(error, error_size, "%s: a %d-D image; only 3-D images, or 4-D with channels on the fourth axis, are supported",
             path, rank);
    goto fail;
  }
  dtype = nifti1_dtype(nifti1_i16(h, NIFTI1_OFF_DATATYPE, swap), &element_size);
  if (dtype == 0) {
    snprintf(error, error_size, "%s: NIfTI datatype %d is not supported (use uint8/int8/uint16/int16/uint32/int32/float32/float64)",
             path, nifti1_i16(h, NIFTI1_OFF_DATATYPE, swap));
    goto fail;
  }
  if ((size_t)nifti1_i16(h, NIFTI1_OFF_BITPIX, swap) != 8 * element_size) {
    snprintf(error, error_size, "%s: bitpix %d does not match the datatype", path, nifti1_i16(h, NIFTI1_OFF_BITPIX, swap));
    goto fail;
  }
  for (i = 0; i < 4; i++) {
    if (sizes[i] > (size_t)-1 / 16 / voxels) {
      snprintf(error, error_size, "%s: the image is too large", path);
      goto fail;
    }
    voxels *= sizes[i];
  }
  bytes = voxels * element_size;
  vox_offset = (double)nifti1_f32(h, NIFTI1_OFF_VOX_OFFSET, swap);
  if (!(vox_offset >= 352.0 && vox_offset <= 1e9) || vox_offset != floor(vox_offset)) {
    snprintf(error, error_size, "%s: vox_offset %g is not a valid data offset", path, vox_offset);
    goto fail;
  }
  raw = (unsigned char *)malloc(bytes);
  if (raw == NULL) {
    snprintf(error, error_size, "%s: cannot allocate %lu bytes", path, (unsigned long)bytes);
    goto fail;
  }
  if (fseek(file, (long)vox_offset, SEEK_SET) != 0 || fread(raw, 1, bytes, file) != bytes) {
    snprintf(error, error_size, "%s: the data block is shorter than %lu bytes", path, (unsigned long)bytes);
    goto fail;
  }
  fclose(file);
  file = NULL;
  if (swap && element_size > 1) {
    size_t v;
    for (v = 0; v < voxels; v++) nifti1_swap(raw + v * element_size, element_size);
  }

  for (i = 0; i < 3; i++) {
    image->dims[i] = sizes[i];
    image->spacing[i] = fabs((double)nifti1_f32(h, NIFTI1_OFF_PIXDIM + 4 * (i + 1), swap));
  }
  image->channels = sizes[3];
  nifti1_geometry(h, swap, image);

  slope = (double)nifti1_f32(h, NIFTI1_OFF_SCL_SLOPE, swap);
  inter = (double)nifti1_f32(h, NIFTI1_OFF_SCL_INTER, swap);
  if (slope != 0.0 && !(slope == 1.0 && inter == 0.0)) {
    /* Scaled voxels become float32, as every NIfTI reader presents them. */
    float *scaled = (float *)malloc(voxels * sizeof(float));
    size_t v;
    if (scaled == NULL) {
      snprintf(error, error_size, "%s: cannot allocate the scaled voxels", path);
      goto fail;
    }
    for (v = 0; v < voxels; v++) scaled[v] = (float)(nifti1_value(raw, dtype, v) * slope + inter);
    free(raw);
    raw = (unsigned char *)scaled;
    dtype = NNRT_DTYPE_F32;
  }
  image->data = raw;
  image->dtype = dtype;
  return 0;

fail:
  free(raw);
  if (file != NULL) fclose(file);
  memset(image, 0, sizeof *image);
  return 1;
}

#endif /* NNRT_EXAMPLE_NIFTI1_READER_H */
