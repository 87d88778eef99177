// Shared declarations of the @hype/kvm-sys addon.
#pragma once

#include <napi.h>

#include <time.h>

#include <cstdint>
#include <string>

namespace hype {

// CLOCK_MONOTONIC in nanoseconds.
inline uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + ts.tv_nsec;
}

// Throws a JS Error "<what> failed: ENAME (description)" with .errno (positive), .code and .syscall.
void ThrowErrno(Napi::Env env, const char* what, int err);
Napi::Error ErrnoError(Napi::Env env, const char* what, int err);

// Calls a JS function from a native (libuv/TSFN) callback the way Node's own callbacks are called:
// inside a callback scope (microtasks and nextTicks run afterwards) and with uncaught exceptions
// reported as such instead of being left pending.
// `receiver` must be an object (napi_make_callback refuses undefined).
void CallIntoJs(Napi::Env env, const Napi::FunctionReference& fn, napi_value receiver, napi_async_context context,
                std::initializer_list<napi_value> args);

// Number or BigInt -> uint64 (throws TypeError on anything else, RangeError on negatives/fractions).
bool ToUint64(Napi::Env env, const Napi::Value& value, const char* name, uint64_t* out);

// The real-time signal used to kick a vCPU thread out of KVM_RUN (installed once, without SA_RESTART).
int KickSignal();
void InstallKickSignalHandler();

void InitSyscalls(Napi::Env env, Napi::Object exports);
void InitErrors(Napi::Env env, Napi::Object exports);
void InitLayout(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitFdWatcher(Napi::Env env, Napi::Object exports);
void InitVcpuThread(Napi::Env env, Napi::Object exports);
void InitPioLoop(Napi::Env env, Napi::Object exports);

// Per-environment constructors (kept so native code can recognise its own objects).
struct AddonData {
  Napi::FunctionReference mapping_constructor;
};

}  // namespace hype
