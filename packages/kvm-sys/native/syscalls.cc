// open/close, the allow-listed ioctl entry point, and eventfd.
//
// ioctl is deliberately not a blind pass-through: every request must be a KVM ioctl on the list below,
// and a struct argument must be a JS buffer at least as large as the kernel will read or write
// (including the variable-length tails of kvm_msrs / kvm_cpuid2 / kvm_msr_list / kvm_irq_routing).
// The list and every request number come from kvm_abi.c (compiled as C, see there).
// Requests that carry host pointers (KVM_SET_USER_MEMORY_REGION, dirty logs, ...) are not on the list:
// guest memory is only ever registered through setUserMemoryRegion() with an addon-owned Mapping.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common.h"
#include "kvm_abi.h"

namespace hype {

namespace {

const hype_ioctl_spec* FindSpec(unsigned long request) {
  for (size_t i = 0; i < hype_allowed_ioctl_count; i++) {
    if (hype_allowed_ioctls[i].request == request) return &hype_allowed_ioctls[i];
  }
  return nullptr;
}

uint32_t FirstU32(const uint8_t* data) {
  uint32_t value;
  memcpy(&value, data, sizeof value);
  return value;
}

// KVM_ENABLE_CAP capabilities whose args carry a host pointer the kernel writes through.
bool CapTakesHostPointer(uint32_t cap) {
  for (size_t i = 0; i < hype_caps_with_host_pointers_count; i++) {
    if (cap == hype_caps_with_host_pointers[i]) return true;
  }
  return false;
}

// The bytes the kernel reads or writes through the argument pointer.
size_t BytesUsed(const hype_ioctl_spec& spec, const uint8_t* data, size_t length) {
  size_t fixed = _IOC_SIZE(spec.request);
  if (spec.arg != HYPE_ARG_VARIABLE || length < spec.header_size) return fixed;
  size_t variable = spec.header_size + static_cast<size_t>(FirstU32(data)) * spec.entry_size;
  return variable > fixed ? variable : fixed;
}

std::string Hex(unsigned long value) {
  char hex[20];
  snprintf(hex, sizeof hex, "0x%lx", value);
  return hex;
}

Napi::Value Fail(Napi::Env env, int err) { return Napi::Number::New(env, -err); }

Napi::Value Result(Napi::Env env, long result) {
  return result < 0 ? Fail(env, errno) : Napi::Number::New(env, static_cast<double>(result));
}

// open(path) -> fd | -errno.  O_RDWR | O_CLOEXEC.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<std::string> path = ArgPath(info[0], "open", "path");
  if (!path) return env.Undefined();
  return Result(env, open(path->c_str(), O_RDWR | O_CLOEXEC));
}

// close(fd) -> 0 | -errno.
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<int> fd = ArgFd(info[0], "close");
  if (!fd) return env.Undefined();
  return Result(env, close(*fd));
}

// The struct argument of an ioctl: a buffer at least as large as what the kernel reads or writes.
std::optional<Bytes> StructArg(const Napi::Value& value, const hype_ioctl_spec& spec) {
  std::optional<Bytes> bytes = ArgView(value, "ioctl", "arg");
  if (!bytes) return std::nullopt;
  size_t needed = BytesUsed(spec, bytes->data, bytes->length);
  if (bytes->length < needed) {
    ThrowRangeError(value, "ioctl", "arg",
                    "holds " + std::to_string(bytes->length) + " bytes, the kernel uses " + std::to_string(needed));
    return std::nullopt;
  }
  if (spec.request == hype_KVM_ENABLE_CAP && CapTakesHostPointer(FirstU32(bytes->data))) {
    ThrowRangeError(value, "ioctl", "arg",
                    "enables capability " + std::to_string(FirstU32(bytes->data)) +
                        ", which takes a host pointer and is refused");
    return std::nullopt;
  }
  return bytes;
}

// ioctl(fd, request, arg?) -> result (>= 0) | -errno.
Napi::Value Ioctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<int> fd = ArgFd(info[0], "ioctl");
  if (!fd) return env.Undefined();
  std::optional<uint32_t> request = ArgUint32(info[1], "ioctl", "request");
  if (!request) return env.Undefined();
  const hype_ioctl_spec* spec = FindSpec(*request);
  if (spec == nullptr) {
    ThrowRangeError(info[1], "ioctl", "request", Hex(*request) + " is not on @hype/kvm-sys's allow list");
    return env.Undefined();
  }
  switch (spec->arg) {
    case HYPE_ARG_NONE:
      if (!info[2].IsUndefined()) {
        ThrowTypeError(info[2], "ioctl", "arg", "must be undefined: request " + Hex(*request) + " takes no argument");
        return env.Undefined();
      }
      return Result(env, ioctl(*fd, *request, 0UL));
    case HYPE_ARG_INT: {
      std::optional<uint64_t> value = ArgUint64(info[2], "ioctl", "arg");
      if (!value) return env.Undefined();
      return Result(env, ioctl(*fd, *request, static_cast<unsigned long>(*value)));
    }
    default: {
      std::optional<Bytes> bytes = StructArg(info[2], *spec);
      if (!bytes) return env.Undefined();
      return Result(env, ioctl(*fd, *request, bytes->data));
    }
  }
}

// eventfd(initval = 0) -> fd | -errno.  Non-blocking, close-on-exec.
Napi::Value EventFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<uint32_t> initval = 0;
  if (!info[0].IsUndefined()) initval = ArgUint32(info[0], "eventfd", "initval");
  if (!initval) return env.Undefined();
  return Result(env, eventfd(*initval, EFD_CLOEXEC | EFD_NONBLOCK));
}

// eventfdRead(fd) -> counter (bigint, counter reset to 0) | -errno (number; -EAGAIN when it was 0).
Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<int> fd = ArgFd(info[0], "eventfdRead");
  if (!fd) return env.Undefined();
  uint64_t value = 0;
  ssize_t n = read(*fd, &value, sizeof value);
  if (n < 0) return Fail(env, errno);
  if (n != sizeof value) return Fail(env, EIO);
  return Napi::BigInt::New(env, value);
}

// eventfdWrite(fd, value) -> 0 | -errno.
Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<int> fd = ArgFd(info[0], "eventfdWrite");
  if (!fd) return env.Undefined();
  std::optional<uint64_t> value = ArgUint64(info[1], "eventfdWrite", "value");
  if (!value) return env.Undefined();
  ssize_t n = write(*fd, &*value, sizeof *value);
  if (n < 0) return Fail(env, errno);
  return Napi::Number::New(env, 0);
}

// socketpair() -> [fd, fd] | -errno.  AF_UNIX stream, close-on-exec, blocking: for a child process
// that expects a blocking socket (passt's --fd); the caller's end can be made non-blocking by libuv.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return Fail(env, errno);
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(uint32_t{0}, Napi::Number::New(env, fds[0]));
  pair.Set(uint32_t{1}, Napi::Number::New(env, fds[1]));
  return pair;
}

}  // namespace

void InitSyscalls(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("ioctl", Napi::Function::New(env, Ioctl, "ioctl"));
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead, "eventfdRead"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
  exports.Set("pageSize", Napi::Number::New(env, sysconf(_SC_PAGESIZE)));
  exports.Set("kickSignal", Napi::Number::New(env, KickSignal()));
}

}  // namespace hype
