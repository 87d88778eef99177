// Benchmark baseline: KVM_RUN in a tight loop on the calling thread, completing port-I/O exits in C.
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <time.h>

#include <cerrno>

#include "mapping.h"

namespace hype {

namespace {

// The samples array is allocated up front: 16 Mi exits = 128 MiB of samples.
constexpr uint64_t kMaxExits = 1 << 24;

// runPioLoop(vcpuFd, runMapping, exits) -> Float64Array: nanoseconds between consecutive exits.
// Every exit must be KVM_EXIT_IO (an OUT; an IN is answered with zeros); anything else throws.
Napi::Value RunPioLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<int> fd = ArgFd(info[0], "runPioLoop", "vcpuFd");
  if (!fd) return env.Undefined();
  Mapping* mapping = Mapping::FromValue(info[1], "runPioLoop", "run");
  if (mapping == nullptr) return env.Undefined();
  std::optional<uint64_t> exits = ArgUint(info[2], "runPioLoop", "exits", kMaxExits);
  if (!exits) return env.Undefined();
  MappingState* state = mapping->state().get();
  if (state == nullptr || state->unmapped || state->pins > 0 || state->size < sizeof(kvm_run)) {
    Napi::Error::New(env, "runPioLoop: the kvm_run mapping is closed, too small, or used by a running vCPU thread")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float64Array samples = Napi::Float64Array::New(env, *exits);
  if (env.IsExceptionPending()) return env.Undefined();
  auto* run = static_cast<kvm_run*>(state->addr);
  auto* page = static_cast<uint8_t*>(state->addr);

  uint64_t previous = NowNs();
  for (uint64_t i = 0; i < *exits;) {
    if (ioctl(*fd, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      ThrowErrno(env, "ioctl KVM_RUN", errno);
      return env.Undefined();
    }
    if (run->exit_reason != KVM_EXIT_IO) {
      Napi::Error::New(env, "runPioLoop: unexpected exit reason " + std::to_string(run->exit_reason))
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (run->io.direction == KVM_EXIT_IO_IN) {
      uint64_t bytes = static_cast<uint64_t>(run->io.size) * run->io.count;
      if (run->io.data_offset + bytes <= state->size) memset(page + run->io.data_offset, 0, bytes);
    }
    uint64_t now = NowNs();
    samples[i++] = static_cast<double>(now - previous);
    previous = now;
  }
  return samples;
}

}  // namespace

void InitPioLoop(Napi::Env env, Napi::Object exports) {
  exports.Set("runPioLoop", Napi::Function::New(env, RunPioLoop, "runPioLoop"));
}

}  // namespace hype
