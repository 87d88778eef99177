// @hype/kvm-sys native entry point.
#include "common.h"

namespace hype {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitErrors(env, exports);
  InitSyscalls(env, exports);
  InitMapping(env, exports);
  InitFdWatcher(env, exports);
  InitTun(env, exports);
  InitVcpuThread(env, exports);
  InitPioLoop(env, exports);
  InitLayout(env, exports);
  return exports;
}

}  // namespace hype

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return hype::Init(env, exports); }

NODE_API_MODULE(kvm_sys, InitAddon)
