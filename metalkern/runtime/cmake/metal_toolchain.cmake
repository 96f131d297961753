# metal_toolchain.cmake — configure-time checks of the metal backend
# (CMakeLists.txt includes it after project()). Each check fails with what
# is wrong and the command that fixes it, before anything is built.
#
# No Apple toolchain exists where orchard's tests run: these functions use
# no project() state but the variables they name, so steps' tests run them
# with `cmake -P` against a fake xcrun and xcodebuild (test doubles in
# steps/testdata/fake-xcode). docs/runtime.md, "What only a Mac can prove".

# Xcode 15: the kernels are compiled with -std=metal3.0 and the host uses
# C++20 <source_location>; keep equal to steps.MinXcode.
set(ORCHARD_MIN_XCODE "15.0")

# orchard_check_xcode(<xcodebuild>): a full Xcode >= ORCHARD_MIN_XCODE is
# selected (the Command Line Tools have no Metal compiler). Sets
# ORCHARD_XCODE_VERSION. Betas count as their release ("Xcode 26.0 beta").
function(orchard_check_xcode xcodebuild)
  if(NOT xcodebuild)
    message(FATAL_ERROR "ORCHARD_BACKEND=metal needs Xcode: xcodebuild was not found. Install Xcode, then "
                        "`sudo xcode-select -s /Applications/Xcode.app/Contents/Developer`")
  endif()
  execute_process(COMMAND "${xcodebuild}" -version RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if("${out}${err}" MATCHES "requires Xcode|command line tools instance")
    message(FATAL_ERROR "only the Command Line Tools are selected; the Metal compiler needs Xcode. Install Xcode, "
                        "then `sudo xcode-select -s /Applications/Xcode.app/Contents/Developer`")
  endif()
  if(NOT rc EQUAL 0 OR NOT "${out}" MATCHES "Xcode ([0-9]+(\\.[0-9]+)*)")
    string(STRIP "${out}${err}" said)
    message(FATAL_ERROR "`xcodebuild -version` failed (${rc}): ${said}")
  endif()
  set(v "${CMAKE_MATCH_1}")
  if(v VERSION_LESS ORCHARD_MIN_XCODE)
    message(FATAL_ERROR "Xcode ${v} is older than ${ORCHARD_MIN_XCODE} (-std=metal3.0 and C++20 <source_location> need it): "
                        "install Xcode ${ORCHARD_MIN_XCODE} or newer and select it with `sudo xcode-select -s`")
  endif()
  set(ORCHARD_XCODE_VERSION "${v}" PARENT_SCOPE)
endfunction()

# orchard_check_metal_toolchain(<xcrun>): the Metal compiler runs. It is
# run, not looked up: with Xcode 26+ and no Metal Toolchain download,
# `xcrun -f metal` still prints a path. Sets ORCHARD_METAL_VERSION.
function(orchard_check_metal_toolchain xcrun)
  execute_process(COMMAND "${xcrun}" -sdk macosx metal --version RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(STRIP "${out}${err}" said)
  if("${said}" MATCHES "missing Metal Toolchain")
    message(FATAL_ERROR "the Metal Toolchain is missing (Xcode 26 and later download it separately). Run\n"
                        "  xcodebuild -downloadComponent MetalToolchain\n"
                        "then configure again. xcrun said: ${said}")
  endif()
  if("${said}" MATCHES "unable to find utility|requires Xcode")
    message(FATAL_ERROR "xcrun finds no Metal compiler: only the Command Line Tools are selected. Install Xcode, "
                        "then `sudo xcode-select -s /Applications/Xcode.app/Contents/Developer`")
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "`xcrun -sdk macosx metal --version` failed (${rc}): ${said}")
  endif()
  if("${said}" MATCHES "metal version ([0-9]+(\\.[0-9]+)*)")
    set(ORCHARD_METAL_VERSION "${CMAKE_MATCH_1}" PARENT_SCOPE)
  else()
    set(ORCHARD_METAL_VERSION "unknown" PARENT_SCOPE)
  endif()
endfunction()

# orchard_check_same_apple_clang(): the .mm and the .cpp files are compiled
# by one Apple clang. CMake picks the Objective-C++ compiler separately from
# the C++ one, and with a Homebrew g++ or clang as CXX the two halves of the
# runner would get different standard libraries.
function(orchard_check_same_apple_clang)
  set(fix "configure a fresh build directory with -DCMAKE_CXX_COMPILER=/usr/bin/clang++ "
          "-DCMAKE_OBJCXX_COMPILER=/usr/bin/clang++ (or with CXX and OBJCXX unset)")
  string(JOIN "" fix ${fix})
  foreach(lang IN ITEMS CXX OBJCXX)
    if(NOT CMAKE_${lang}_COMPILER_ID STREQUAL "AppleClang")
      message(FATAL_ERROR "ORCHARD_BACKEND=metal compiles the .mm and the .cpp files with Apple clang, but the ${lang} "
                          "compiler ${CMAKE_${lang}_COMPILER} is ${CMAKE_${lang}_COMPILER_ID} ${CMAKE_${lang}_COMPILER_VERSION}: ${fix}")
    endif()
  endforeach()
  if(NOT CMAKE_CXX_COMPILER_VERSION VERSION_EQUAL CMAKE_OBJCXX_COMPILER_VERSION)
    message(FATAL_ERROR "the C++ compiler (${CMAKE_CXX_COMPILER}, AppleClang ${CMAKE_CXX_COMPILER_VERSION}) and the "
                        "Objective-C++ compiler (${CMAKE_OBJCXX_COMPILER}, AppleClang ${CMAKE_OBJCXX_COMPILER_VERSION}) "
                        "differ: ${fix}")
  endif()
endfunction()
