// Segments one image through the cxx binding (namespace nnunet_rt), with the same scenario and
// output as examples/: progress on stderr; on stdout "label NAME VOXELS" per label and, for a
// model with a classification head, "class NAME PROBABILITY".
//
//   nnunet_rt_cxx_example MODEL_DIR IMAGE.nii [-f FOLD]... [--disable-tta]

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "nifti1_reader.h"  // the examples' NIfTI reader (its dtype codes come from nnunet_rt.h)
#include "nnunet_rt_cxx/src/lib.rs.h"

namespace {

template <typename T>
rust::Slice<const T> voxels(const nifti1_image &image) {
  return rust::Slice<const T>(static_cast<const T *>(image.data),
                              image.dims[0] * image.dims[1] * image.dims[2] * image.channels);
}

nnunet_rt::Prediction predict(const nnunet_rt::Model &model, const nifti1_image &image,
                              const nnunet_rt::PredictOptions &options, nnunet_rt::Progress &progress) {
  const std::array<std::size_t, 3> dims{image.dims[0], image.dims[1], image.dims[2]};
  nnunet_rt::Geometry geometry;
  for (int i = 0; i < 3; ++i) {
    geometry.spacing[i] = image.spacing[i];
    geometry.origin[i] = image.origin[i];
  }
  for (int i = 0; i < 9; ++i) geometry.direction[i] = image.direction[i];
  switch (image.dtype) {
    case NNRT_DTYPE_U8: return model.predict(voxels<std::uint8_t>(image), dims, image.channels, geometry, options, progress);
    case NNRT_DTYPE_I8: return model.predict(voxels<std::int8_t>(image), dims, image.channels, geometry, options, progress);
    case NNRT_DTYPE_U16: return model.predict(voxels<std::uint16_t>(image), dims, image.channels, geometry, options, progress);
    case NNRT_DTYPE_I16: return model.predict(voxels<std::int16_t>(image), dims, image.channels, geometry, options, progress);
    case NNRT_DTYPE_U32: return model.predict(voxels<std::uint32_t>(image), dims, image.channels, geometry, options, progress);
    case NNRT_DTYPE_I32: return model.predict(voxels<std::int32_t>(image), dims, image.channels, geometry, options, progress);
    case NNRT_DTYPE_F32: return model.predict(voxels<float>(image), dims, image.channels, geometry, options, progress);
    default: return model.predict(voxels<double>(image), dims, image.channels, geometry, options, progress);
  }
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE.nii [-f FOLD]... [--disable-tta]\n", argv[0]);
    return 2;
  }
  nnunet_rt::LoadOptions load = nnunet_rt::default_load_options();
  nnunet_rt::PredictOptions options = nnunet_rt::default_predict_options();
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--disable-tta") == 0) {
      options.tta = false;
    } else if (std::strcmp(argv[i], "-f") == 0 && i + 1 < argc) {
      load.folds.push_back(rust::String(argv[++i]));
    } else {
      std::fprintf(stderr, "predict: unexpected argument %s\n", argv[i]);
      return 2;
    }
  }

  nifti1_image image;
  char error[512];
  if (nifti1_read(argv[2], &image, error, sizeof error) != 0) {
    std::fprintf(stderr, "predict: %s\n", error);
    return 1;
  }
  int status = 1;
  try {
    const rust::Box<nnunet_rt::Model> model = nnunet_rt::Model::load(argv[1], load);
    nnunet_rt::ProgressFn progress([](rust::Str stage, double fraction) {
      std::fprintf(stderr, "%-10s %3.0f%%\n", std::string(stage).c_str(), fraction * 100.0);
      return true;  // false would cancel
    });
    const nnunet_rt::Prediction prediction = predict(*model, image, options, progress);

    std::vector<unsigned long long> counts(prediction.label_names.size(), 0);
    // The map is uint8 (up to 256 labels, as nnU-Net writes it) or uint16: one of the two is filled.
    for (const std::uint8_t label : prediction.labels_u8) {
      if (label < counts.size()) ++counts[label];
    }
    for (const std::uint16_t label : prediction.labels_u16) {
      if (label < counts.size()) ++counts[label];
    }
    for (std::size_t i = 0; i < counts.size(); ++i) {
      std::printf("label %s %llu\n", std::string(prediction.label_names[i]).c_str(), counts[i]);
    }
    if (!prediction.class_names.empty()) {
      const std::size_t c = prediction.predicted_class;
      std::printf("class %s %.6f\n", std::string(prediction.class_names[c]).c_str(), prediction.class_probabilities[c]);
    }
    status = 0;
  } catch (const rust::Error &e) {
    // e.what() starts with the status name, e.g. "NNRT_IO: model folder ... does not exist".
    std::fprintf(stderr, "predict: %s\n", e.what());
  }
  nifti1_free(&image);
  return status;
}
