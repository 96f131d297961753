// npy.h — minimal .npy reader/writer for the attention runner.
//
// Reads format versions 1.0, 2.0 and 3.0 with dtype '<f4' (float32) or '<f2'
// (float16), C order. Anything else (other dtypes, big-endian, Fortran order,
// truncated or oversized files) is rejected with an NpyError whose message
// names the file. Writes version 1.0 (2.0 when the header would not fit),
// header padded so the data starts on a 64-byte boundary, as numpy does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace orchard {

struct NpyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class NpyType { kF4, kF2 };

inline size_t npy_itemsize(NpyType t) { return t == NpyType::kF4 ? 4 : 2; }
inline const char* npy_descr(NpyType t) { return t == NpyType::kF4 ? "<f4" : "<f2"; }

struct NpyArray {
  NpyType type = NpyType::kF4;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // little-endian elements, C order

  size_t count() const;
  std::string shape_string() const;  // "(2, 3, 4)"
};

NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, NpyType type, const std::vector<int64_t>& shape,
               const void* data, size_t bytes);

}  // namespace orchard
