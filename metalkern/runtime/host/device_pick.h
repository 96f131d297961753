// device_pick.h — which Metal device the runner uses (plain C++, so it is
// tested on Linux with a fake device list; metal_backend.mm fills the list
// from MTLCopyAllDevices()).
//
// With a wanted name (--device, or ORCHARD_METAL_DEVICE on Metal): the first
// device whose name contains it, case-insensitively, else an error listing
// the devices found. Without: the first device that supports Apple7+
// (simdgroup matrices) and is not paravirtual; none such: -1, and the caller
// falls back to MTLCreateSystemDefaultDevice() (metal-api.md §6).
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace orchard {

struct DeviceCandidate {
  std::string name;
  int apple_family = 0;  // highest MTLGPUFamilyAppleN supported (0: none)
  bool paravirtual = false;
};

inline bool is_paravirtual_name(const std::string& name) {
  return name.find("Paravirtual") != std::string::npos;
}

inline std::string ascii_lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

inline std::string device_list(const std::vector<DeviceCandidate>& devs) {
  if (devs.empty()) return "none";
  std::string s;
  for (size_t i = 0; i < devs.size(); ++i) s += (i ? ", " : "") + ("\"" + devs[i].name + "\"");
  return s;
}

// Returns the index of the device to use, or -1 (no wanted name and no
// usable device: use the default device). A wanted name that matches none
// sets *error and returns -1.
inline int pick_device(const std::vector<DeviceCandidate>& devs, const std::string& want,
                       std::string* error) {
  if (!want.empty()) {
    const std::string w = ascii_lower(want);
    for (size_t i = 0; i < devs.size(); ++i) {
      if (ascii_lower(devs[i].name).find(w) != std::string::npos) return int(i);
    }
    *error = "no device matches \"" + want + "\"; devices found: " + device_list(devs);
    return -1;
  }
  for (size_t i = 0; i < devs.size(); ++i) {
    if (devs[i].apple_family >= 7 && !devs[i].paravirtual) return int(i);
  }
  return -1;
}

// Why the kernels cannot run on a device ("" when they can).
inline std::string device_problem(const DeviceCandidate& d) {
  if (d.paravirtual) {
    return "Metal device \"" + d.name +
           "\" is a paravirtual GPU (e.g. a GitHub-hosted macOS runner) without simdgroup matrix "
           "support; run the Metal stages on an Apple-silicon Mac, or use the emu runner";
  }
  if (d.apple_family < 7) {
    return "Metal device \"" + d.name + "\" supports " +
           (d.apple_family > 0 ? "MTLGPUFamilyApple" + std::to_string(d.apple_family) : std::string("no Apple GPU family")) +
           ", the kernels need MTLGPUFamilyApple7 (simdgroup_matrix: an M1/A14 GPU or newer)";
  }
  return "";
}

}  // namespace orchard
