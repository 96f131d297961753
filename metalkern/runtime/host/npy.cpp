// npy.cpp — see npy.h.
#include "npy.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

namespace orchard {
namespace {

const char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw NpyError(path + ": " + what);
}

// A tiny parser for the header's Python dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct HeaderParser {
  const std::string& s;
  const std::string& path;
  size_t i = 0;

  void skip_ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(char c) {
    skip_ws();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(path, std::string("malformed .npy header: expected '") + c + "' in " + s);
  }
  std::string str() {
    skip_ws();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) {
      fail(path, "malformed .npy header: expected a quoted string in " + s);
    }
    char q = s[i++];
    size_t end = s.find(q, i);
    if (end == std::string::npos) fail(path, "malformed .npy header: unterminated string");
    std::string out = s.substr(i, end - i);
    i = end + 1;
    return out;
  }
  std::string word() {
    skip_ws();
    size_t start = i;
    while (i < s.size() && std::isalnum(static_cast<unsigned char>(s[i]))) ++i;
    return s.substr(start, i - start);
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> dims;
    while (!eat(')')) {
      std::string w = word();
      if (w.empty() || w.find_first_not_of("0123456789") != std::string::npos || w.size() > 15) {
        fail(path, "malformed .npy header: bad shape entry in " + s);
      }
      dims.push_back(std::stoll(w));
      if (!eat(',')) {
        expect(')');
        break;
      }
    }
    return dims;
  }
};

struct Header {
  std::string descr;
  bool fortran = false;
  bool has_descr = false, has_order = false, has_shape = false;
  std::vector<int64_t> shape;
};

Header parse_header(const std::string& text, const std::string& path) {
  HeaderParser p{text, path};
  Header h;
  p.expect('{');
  while (!p.eat('}')) {
    std::string key = p.str();
    p.expect(':');
    if (key == "descr") {
      h.descr = p.str();
      h.has_descr = true;
    } else if (key == "fortran_order") {
      std::string w = p.word();
      if (w != "True" && w != "False") fail(path, "malformed .npy header: fortran_order is " + w);
      h.fortran = (w == "True");
      h.has_order = true;
    } else if (key == "shape") {
      h.shape = p.tuple();
      h.has_shape = true;
    } else {
      fail(path, "unexpected key '" + key + "' in .npy header");
    }
    if (!p.eat(',')) {
      p.expect('}');
      break;
    }
  }
  if (!h.has_descr || !h.has_order || !h.has_shape) {
    fail(path, "malformed .npy header: needs descr, fortran_order and shape: " + text);
  }
  return h;
}

uint32_t le(const unsigned char* b, int n) {
  uint32_t v = 0;
  for (int k = n - 1; k >= 0; --k) v = (v << 8) | b[k];
  return v;
}

}  // namespace

size_t NpyArray::count() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

std::string NpyArray::shape_string() const {
  std::string s = "(";
  for (size_t k = 0; k < shape.size(); ++k) {
    if (k) s += ", ";
    s += std::to_string(shape[k]);
  }
  return s + ")";
}

NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) fail(path, "read error");
  if (bytes.size() < kMagicLen + 4 || bytes.compare(0, kMagicLen, kMagic, kMagicLen) != 0) {
    fail(path, "not a .npy file (missing \\x93NUMPY magic)");
  }
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  int major = u[6];
  size_t hlen = 0, hstart = 0;
  if (major == 1) {
    hlen = le(u + 8, 2);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(path, "truncated .npy header");
    hlen = le(u + 8, 4);
    hstart = 12;
  } else {
    fail(path, "unsupported .npy format version " + std::to_string(major) + "." +
                   std::to_string(u[7]) + " (supported: 1.0, 2.0, 3.0)");
  }
  if (bytes.size() < hstart + hlen) fail(path, "truncated .npy header");
  Header h = parse_header(bytes.substr(hstart, hlen), path);

  NpyArray a;
  if (h.descr == "<f4") {
    a.type = NpyType::kF4;
  } else if (h.descr == "<f2") {
    a.type = NpyType::kF2;
  } else {
    fail(path, "unsupported dtype '" + h.descr +
                   "': the runner reads float32 ('<f4') and float16 ('<f2') only");
  }
  a.shape = h.shape;
  if (h.fortran && a.shape.size() > 1) {
    fail(path, "Fortran-order array: save it in C order (numpy.ascontiguousarray)");
  }
  size_t want = a.count() * npy_itemsize(a.type);
  size_t have = bytes.size() - hstart - hlen;
  if (have != want) {
    fail(path, "data size mismatch: shape " + a.shape_string() + " " + h.descr + " needs " +
                   std::to_string(want) + " bytes, file has " + std::to_string(have));
  }
  a.data.assign(bytes.begin() + std::ptrdiff_t(hstart + hlen), bytes.end());
  return a;
}

void write_npy(const std::string& path, NpyType type, const std::vector<int64_t>& shape,
               const void* data, size_t bytes) {
  std::string dict = std::string("{'descr': '") + npy_descr(type) +
                     "', 'fortran_order': False, 'shape': (";
  for (size_t k = 0; k < shape.size(); ++k) {
    dict += std::to_string(shape[k]);
    if (shape.size() == 1 || k + 1 < shape.size()) dict += ",";
    if (k + 1 < shape.size()) dict += " ";
  }
  dict += "), }";
  // Pad with spaces + '\n' so that magic + version + length + header is a multiple of 64.
  size_t prefix = 10;
  size_t total = prefix + dict.size() + 1;
  int major = 1;
  if (total + 63 > 65535 + prefix) {
    major = 2;
    prefix = 12;
    total = prefix + dict.size() + 1;
  }
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string head(kMagic, kMagicLen);
  head += char(major);
  head += char(0);
  uint32_t n = uint32_t(dict.size());
  for (int k = 0; k < (major == 1 ? 2 : 4); ++k) head += char((n >> (8 * k)) & 0xff);
  head += dict;

  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(path, std::string("cannot create: ") + std::strerror(errno));
  f.write(head.data(), std::streamsize(head.size()));
  f.write(static_cast<const char*>(data), std::streamsize(bytes));
  f.close();
  if (!f) fail(path, std::string("write failed: ") + std::strerror(errno));  // e.g. a full disk
}

}  // namespace orchard
