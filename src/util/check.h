// ARBOR_CHECK: an assertion that stays on in release builds, for our own bugs (broken invariants).
// The world's errors (bad input, failed devices) are Status values, never checks.
#pragma once

#include <cstdio>
#include <cstdlib>

#define ARBOR_CHECK(cond)                                                              \
  do {                                                                                 \
    if (__builtin_expect(!(cond), 0)) {                                                \
      std::fprintf(stderr, "arbor: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
