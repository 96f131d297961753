// orchard_emu/counters_api.h — what the runner of the counting build
// (orchard-runner-emu-counters, -DORCHARD_EMU_COUNTERS=1) reads after each
// dispatch. See docs/perf.md "Work counters" for each figure's definition.
#pragma once

#include <cstdint>

namespace orchard_emu {

struct WorkCounters {
  uint64_t simdgroup_mma = 0;              // 8x8x8 multiply(-accumulate)s, one per simdgroup call
  uint64_t threadgroup_bytes = 0;          // max over groups: bytes of threadgroup declarations executed
  uint64_t threadgroup_traffic_bytes = 0;  // bytes read and written in threadgroup memory
  uint64_t device_bytes = 0;               // bytes read and written through device pointers
  uint64_t barriers = 0;                   // max over groups: threadgroup_barrier calls of one group
};

// The counts since the last call (summed over every OS thread that ran
// emulated threads), then zeroes them. Call between dispatches only.
WorkCounters take_work_counters();

}  // namespace orchard_emu
