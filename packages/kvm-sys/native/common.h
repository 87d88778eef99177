// Shared declarations of the @hype/kvm-sys addon.
#pragma once

#include <napi.h>

#include <time.h>

#include <cstdint>
#include <optional>
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

// Argument checks, used by every exported function before it acts. Each returns the value, or nothing
// with a TypeError (wrong type) or RangeError (wrong value) "<fn>: <name> must be ... (got ...)" pending,
// in which case the caller must return at once. None of them runs JS (no valueOf, getters or coercion),
// so nothing can change between a check and the use of what it returned.

// A Number that is an integer from 0 to `max`.
std::optional<uint64_t> ArgUint(const Napi::Value& value, const char* fn, const char* name, uint64_t max);
// A file descriptor: an integer from 0 to INT32_MAX.
std::optional<int> ArgFd(const Napi::Value& value, const char* fn, const char* name = "fd");
std::optional<uint32_t> ArgUint32(const Napi::Value& value, const char* fn, const char* name);
// A BigInt that fits in 64 bits unsigned, or a Number that is a non-negative safe integer.
std::optional<uint64_t> ArgUint64(const Napi::Value& value, const char* fn, const char* name);
std::optional<bool> ArgBool(const Napi::Value& value, const char* fn, const char* name);
// A string without NUL characters (it is handed to C as a path).
std::optional<std::string> ArgPath(const Napi::Value& value, const char* fn, const char* name);
std::optional<Napi::Function> ArgFunction(const Napi::Value& value, const char* fn, const char* name);

// The bytes of a TypedArray or DataView. Views of a SharedArrayBuffer are refused (another thread could
// change a struct between the checks and the kernel reading it, and N-API gives no ArrayBuffer for
// them), as are views of a detached buffer.
struct Bytes {
  uint8_t* data;
  size_t length;
};
std::optional<Bytes> ArgView(const Napi::Value& value, const char* fn, const char* name);

// Throws "<fn>: <name> <problem> (got <value>)" as a TypeError or RangeError.
void ThrowTypeError(const Napi::Value& value, const char* fn, const char* name, const std::string& problem);
void ThrowRangeError(const Napi::Value& value, const char* fn, const char* name, const std::string& problem);

// The real-time signal used to kick a vCPU thread out of KVM_RUN (installed once, without SA_RESTART).
int KickSignal();
void InstallKickSignalHandler();

void InitSyscalls(Napi::Env env, Napi::Object exports);
void InitErrors(Napi::Env env, Napi::Object exports);
void InitLayout(Napi::Env env, Napi::Object exports);
void InitMapping(Napi::Env env, Napi::Object exports);
void InitFdWatcher(Napi::Env env, Napi::Object exports);
void InitTun(Napi::Env env, Napi::Object exports);
void InitVcpuThread(Napi::Env env, Napi::Object exports);
void InitPioLoop(Napi::Env env, Napi::Object exports);

}  // namespace hype
