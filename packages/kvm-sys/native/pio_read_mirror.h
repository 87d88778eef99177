// The port-I/O read mirror: a table a VMM's device models keep current with the values of their
// registers whose reads have no side effect, so that a vCPU thread answers a 1-byte IN from such a port
// itself and re-enters KVM_RUN without a round trip to JavaScript (issue 15).
//
// The table is an anonymous Mapping (src/pio-read-mirror.ts has the same layout, and the addon's
// pioReadMirrorLayout() exports these numbers so a test compares them): kEntries little-endian u32 words,
//   bit 31      valid: a read of `port` returns `value` and nothing else happens
//   bits 8-23   port
//   bits 0-7    value
// One word per entry, so a reader never sees a port of one update with the value of another. The JS
// thread (the only writer) stores whole words with Atomics.store; vCPU threads load them with acquire.
// Device semantics stay in the device model: the table is only data the model publishes.
#pragma once

#include <cstdint>

namespace hype {

namespace pio_read_mirror {

constexpr uint32_t kEntries = 16;
constexpr uint32_t kEntryBytes = 4;
constexpr uint32_t kSize = kEntries * kEntryBytes;
constexpr uint32_t kValid = 0x80000000u;
constexpr uint32_t kPortShift = 8;
constexpr uint32_t kValueMask = 0xff;

// The value published for `port`, or -1 if none is valid.
inline int Lookup(const uint32_t* table, uint16_t port) {
  for (uint32_t i = 0; i < kEntries; i++) {
    const uint32_t word = __atomic_load_n(&table[i], __ATOMIC_ACQUIRE);
    if ((word & kValid) != 0 && ((word >> kPortShift) & 0xffff) == port) return static_cast<int>(word & kValueMask);
  }
  return -1;
}

}  // namespace pio_read_mirror

}  // namespace hype
