// device_pick_test.cpp — the Metal runner's device choice (host/device_pick.h)
// over fake device lists: the test double for MTLCopyAllDevices(), which no
// Linux machine has. Built and run by TestDevicePick (device_pick_test.go);
// prints one line per failed expectation and exits 1 if any failed.
#include <cstdio>
#include <string>
#include <vector>

#include "device_pick.h"

using orchard::DeviceCandidate;

static int failures = 0;

static void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what.c_str());
    ++failures;
  }
}

static int pick(const std::vector<DeviceCandidate>& devs, const std::string& want, std::string* err) {
  err->clear();
  return orchard::pick_device(devs, want, err);
}

int main() {
  // A hosted runner's VM GPU first, then a real one: the real one wins.
  const std::vector<DeviceCandidate> fakeDevices = {
      {"Apple Paravirtual device", 5, orchard::is_paravirtual_name("Apple Paravirtual device")},
      {"AMD Radeon Pro 5500M", 0, false},
      {"Apple M3 Pro", 9, false},
  };
  std::string err;
  expect(fakeDevices[0].paravirtual, "the paravirtual name is recognised");
  expect(pick(fakeDevices, "", &err) == 2 && err.empty(), "default: the first Apple7+ non-paravirtual device");
  expect(pick(fakeDevices, "radeon", &err) == 1 && err.empty(), "a wanted name matches case-insensitively");
  expect(pick(fakeDevices, "Paravirtual", &err) == 0, "a wanted paravirtual device is taken as asked");
  expect(pick(fakeDevices, "M4", &err) == -1 &&
             err == "no device matches \"M4\"; devices found: \"Apple Paravirtual device\", "
                    "\"AMD Radeon Pro 5500M\", \"Apple M3 Pro\"",
         "no match: an error listing the devices (got: " + err + ")");
  // Only unusable devices: -1, the caller falls back to the default device.
  expect(pick({fakeDevices[0], {"Apple A13", 6, false}}, "", &err) == -1 && err.empty(),
         "no usable device: fall back to the default device");
  expect(pick({}, "", &err) == -1 && err.empty(), "no device at all: fall back");
  expect(pick({}, "M1", &err) == -1 && err.find("devices found: none") != std::string::npos,
         "no device and a wanted name: says none were found");
  // Why a device cannot run the kernels.
  expect(orchard::device_problem(fakeDevices[2]).empty(), "an M3 Pro can run the kernels");
  expect(orchard::device_problem(fakeDevices[0]).find("paravirtual GPU") != std::string::npos,
         "the paravirtual device's problem names it");
  expect(orchard::device_problem({"Apple A13", 6, false}).find("MTLGPUFamilyApple6") != std::string::npos,
         "an Apple6 device's problem names its family");
  expect(orchard::device_problem(fakeDevices[1]).find("no Apple GPU family") != std::string::npos,
         "a non-Apple GPU's problem says it has no Apple family");
  if (failures == 0) std::printf("ok\n");
  return failures ? 1 : 0;
}
