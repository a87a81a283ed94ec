// Second translation unit of the header test (see header_cxx_a.cpp).
#include "nnunet_rt.hpp"

std::string version_from_b() {
  nnrt::PredictOptions options;
  (void)options;
  return nnrt::version();
}
