// run_json.h — the pieces of the runner's JSON output shared by its main
// (runner.cpp) and the plain baseline (attn_plain.cpp).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "attn_run.h"  // PassStats

namespace orchard {

// s as a JSON string literal.
inline std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// v as a JSON array of strings.
inline std::string json_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + json_str(v[i]);
  return out + "]";
}

// The "passes" member of run's JSON: one object per pass; with_counters
// (counting build only): each pass's "counters" (not for the plain baseline,
// whose kernels the counting build does not count).
inline std::string passes_json(const std::vector<PassStats>& passes, bool with_counters = true) {
  std::string out = "[";
  for (size_t i = 0; i < passes.size(); ++i) {
    const PassStats& p = passes[i];
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  ",\"grid\":[%u,%u,%u],\"groups_per_dispatch\":%llu,\"dispatches\":%d,"
                  "\"wall_ms\":%.3f,\"gpu_ms\":%.3f}",
                  p.grid.x, p.grid.y, p.grid.z, (unsigned long long)p.max_groups, p.dispatches,
                  p.wall_ms, p.device_ms);
    std::string entry = std::string(i ? "," : "") + "{\"pass\":" + json_str(p.pass) +
                        ",\"kernel\":" + json_str(p.kernel) + buf;
#ifdef ORCHARD_EMU_COUNTERS
    if (with_counters) {
      entry.pop_back();  // the closing brace: counters join the object
      const orchard_emu::WorkCounters& w = p.work;
      char cbuf[320];
      std::snprintf(cbuf, sizeof cbuf,
                    ",\"counters\":{\"simdgroup_mma\":%llu,\"threadgroup_bytes\":%llu,"
                    "\"threadgroup_traffic_bytes\":%llu,\"device_bytes\":%llu,\"barriers\":%llu,"
                    "\"dispatches\":%d}}",
                    (unsigned long long)w.simdgroup_mma, (unsigned long long)w.threadgroup_bytes,
                    (unsigned long long)w.threadgroup_traffic_bytes, (unsigned long long)w.device_bytes,
                    (unsigned long long)w.barriers, p.dispatches);
      entry += cbuf;
    }
#else
    (void)with_counters;
#endif
    out += entry;
  }
  return out + "]";
}

}  // namespace orchard
