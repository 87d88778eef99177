// Benchmark baseline: KVM_RUN in a tight loop on the calling thread, completing port-I/O exits in C.
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <time.h>

#include <cerrno>

#include "mapping.h"

namespace hype {

namespace {

// runPioLoop(vcpuFd, runMapping, exits) -> Float64Array: nanoseconds between consecutive exits.
// Every exit must be KVM_EXIT_IO (an OUT; an IN is answered with zeros); anything else throws.
Napi::Value RunPioLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Mapping* mapping = Mapping::FromValue(env, info[1]);
  if (mapping == nullptr) return env.Undefined();
  MappingState* state = mapping->state().get();
  if (state == nullptr || state->unmapped || state->pins > 0 || state->size < sizeof(kvm_run)) {
    Napi::Error::New(env, "runPioLoop: the kvm_run mapping is closed, too small, or used by a running vCPU thread")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t exits = info[2].As<Napi::Number>().Uint32Value();
  auto* run = static_cast<kvm_run*>(state->addr);
  auto* page = static_cast<uint8_t*>(state->addr);
  Napi::Float64Array samples = Napi::Float64Array::New(env, exits);

  uint64_t previous = NowNs();
  for (uint32_t i = 0; i < exits;) {
    if (ioctl(fd, KVM_RUN, 0) < 0) {
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
