// Segments one image with an nnU-Net model from C++17, through the header-only RAII layer
// (bindings/cxx/include/nnunet_rt.hpp) over the nnunet-rt C API.
//
//   predict MODEL IMAGE.nii [-f FOLD]... [--disable-tta]
//
// MODEL is a model folder or a bundle file (`nnunet-rt bundle`, loaded from memory).
//
// Same scenario and output as examples/c/predict.c and examples/predict.rs: progress on
// stderr; on stdout one "label NAME VOXELS" line per label and, for a model with a
// classification head, "class NAME PROBABILITY".
//
// Build (from the repository root, after `cargo build`):
//   c++ -std=c++17 -Iinclude -Ibindings/cxx/include -Iexamples/c examples/cpp/predict.cpp
//       -Ltarget/debug -lnnunet_rt -Wl,-rpath,$PWD/target/debug -o predict_cpp

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <memory>
#include <string>
#include <vector>

#include "nifti1_reader.h"
#include "nnunet_rt.hpp"

namespace {

// The image read by the C reader, freed on scope exit.
struct Image {
  nifti1_image raw{};
  ~Image() { nifti1_free(&raw); }
};

nnrt::Model load_bundle(const std::string &path, const nnrt::LoadOptions &load) {
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (!file && !file.eof()) throw std::runtime_error("cannot read " + path);
  nnrt::Model model = nnrt::Model::load_from_memory(bytes.data(), bytes.size(), load);
  std::fill(bytes.begin(), bytes.end(), '\0');
  return model;
}

int run(const std::string &model_dir, const char *image_path, const std::vector<std::string> &folds, bool tta) {
  nnrt::LoadOptions load;
  if (!folds.empty()) load.folds(folds);
  // A bundle file is read into memory and loaded from there, as a host that decrypts its models
  // would do; a folder is loaded in place.
  const bool bundle = model_dir.size() > 5 && model_dir.compare(model_dir.size() - 5, 5, ".nnrt") == 0;
  const nnrt::Model model = bundle ? load_bundle(model_dir, load) : nnrt::Model::load(model_dir, load);

  Image image;
  char error[512];
  if (nifti1_read(image_path, &image.raw, error, sizeof error) != 0) {
    std::cerr << "predict: " << error << "\n";
    return 1;
  }
  nnrt::Volume volume;
  volume.raw.data = image.raw.data;
  volume.raw.dtype = image.raw.dtype;
  volume.raw.channels = image.raw.channels;
  std::memcpy(volume.raw.dims, image.raw.dims, sizeof volume.raw.dims);
  std::memcpy(volume.raw.spacing, image.raw.spacing, sizeof volume.raw.spacing);
  std::memcpy(volume.raw.origin, image.raw.origin, sizeof volume.raw.origin);
  std::memcpy(volume.raw.direction, image.raw.direction, sizeof volume.raw.direction);

  nnrt::PredictOptions options;
  options.tta = tta;
  const char *const stages[] = {"preprocess", "network", "export"};
  const nnrt::Result result = model.predict(volume, options, [&](std::uint32_t stage, double fraction) {
    std::fprintf(stderr, "%-10s %3.0f%%\n", stage < 3 ? stages[stage] : "?", fraction * 100.0);
    return true;  // false would cancel
  });

  const std::vector<std::uint64_t> counts = result.label_counts();
  for (std::size_t i = 0; i < counts.size(); ++i) {
    std::printf("label %s %llu\n", model.label_name(i).c_str(), static_cast<unsigned long long>(counts[i]));
  }
  if (result.num_classes() > 0) {
    const std::size_t predicted = result.predicted_class();
    std::printf("class %s %.6f\n", result.class_name(predicted).c_str(), result.class_probabilities()[predicted]);
  }
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " MODEL_DIR IMAGE.nii [-f FOLD]... [--disable-tta]\n";
    return 2;
  }
  std::vector<std::string> folds;
  bool tta = true;
  for (int i = 3; i < argc; ++i) {
    if (std::strcmp(argv[i], "--disable-tta") == 0) {
      tta = false;
    } else if (std::strcmp(argv[i], "-f") == 0 && i + 1 < argc) {
      folds.emplace_back(argv[++i]);
    } else {
      std::cerr << "predict: unexpected argument " << argv[i] << "\n";
      return 2;
    }
  }
  if (nnrt_abi_version() != NNRT_ABI_VERSION) {
    std::cerr << "predict: the library's ABI does not match this header\n";
    return 1;
  }
  try {
    return run(argv[1], argv[2], folds, tta);
  } catch (const nnrt::Error &e) {
    std::cerr << "predict: " << e.what() << "\n";
    return 1;
  }
}
