// emu_inproc.h — the emu backend's knobs, settable from inside a process
// (torch's op library exposes them as orchard_ops.configure). Torch-free;
// defined in emu_backend.cpp. docs/emu.md "In-process use" lists them.
//
// Keys and values (strings, as Python passes them):
//   "mode"              fibers | threads           ORCHARD_EMU_MODE
//   "workers"           0..4096 (0 = all cores)    ORCHARD_EMU_WORKERS
//   "stack_kb"          64..1048576                ORCHARD_EMU_STACK_KB
//   "watchdog_seconds"  1..86400                   ORCHARD_EMU_WATCHDOG_SECONDS
// A configured value wins over the environment variable, which is read
// once, at the first use of the emu backend (make_backend, emu_configure or
// emu_config; never at static-init time), and over BackendOptions. An empty
// value forgets the configured one. Settings apply from the next dispatch
// on, in every emu backend of the process (existing ones included).
// Thread-safe and fork-safe.
#pragma once

#include <string>
#include <vector>

namespace orchard {

// Throws std::invalid_argument naming the key, the value and what is
// accepted ("emu_configure: stack_kb='12': want a whole number of KiB (the
// stack of each emulated thread) from 64 to 1048576").
void emu_configure(const std::string& key, const std::string& value);

// The value in effect now for key (configured, else the environment's, else
// the default; "workers" reports the resolved count, never 0). Throws
// std::invalid_argument for an unknown key, std::runtime_error for a bad
// environment variable.
std::string emu_config(const std::string& key);

// Every key, in the order above.
std::vector<std::string> emu_config_keys();

// Registers the emu's pthread_atfork handlers now (otherwise at first use).
// A library that serializes its emu calls with a lock of its own and holds
// that lock across fork() must call this BEFORE registering its handlers:
// prepare handlers run in reverse order of registration, so its lock is then
// taken before the emu's, the order its calls take them in (the other order
// deadlocks a fork made while another thread is inside a dispatch).
void emu_register_fork_handlers();

}  // namespace orchard
