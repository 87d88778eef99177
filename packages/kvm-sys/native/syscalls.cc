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
#include <unistd.h>

#include <cerrno>
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

// The bytes the kernel reads or writes through the argument pointer.
size_t BytesUsed(const hype_ioctl_spec& spec, const uint8_t* data, size_t length) {
  size_t fixed = _IOC_SIZE(spec.request);
  if (spec.arg != HYPE_ARG_VARIABLE || length < spec.header_size) return fixed;
  uint32_t count;
  memcpy(&count, data, sizeof count);
  size_t variable = spec.header_size + static_cast<size_t>(count) * spec.entry_size;
  return variable > fixed ? variable : fixed;
}

bool GetBytes(const Napi::Value& value, uint8_t** data, size_t* length) {
  if (value.IsTypedArray()) {
    Napi::TypedArray array = value.As<Napi::TypedArray>();
    *data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    *length = array.ByteLength();
    return true;
  }
  if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    *data = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    *length = view.ByteLength();
    return true;
  }
  return false;
}

Napi::Value Fail(Napi::Env env, int err) { return Napi::Number::New(env, -err); }

// open(path) -> fd | -errno.  O_RDWR | O_CLOEXEC.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) {
    Napi::TypeError::New(env, "open(path): path must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  return fd < 0 ? Fail(env, errno) : Napi::Number::New(env, fd);
}

// close(fd) -> 0 | -errno.
Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  return close(fd) < 0 ? Fail(info.Env(), errno) : Napi::Number::New(info.Env(), 0);
}

// ioctl(fd, request, arg?) -> result (>= 0) | -errno.
Napi::Value Ioctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "ioctl(fd, request, arg): fd and request must be numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long request = info[1].As<Napi::Number>().Uint32Value();
  const hype_ioctl_spec* spec = FindSpec(request);
  if (spec == nullptr) {
    Napi::Error::New(env, "ioctl request 0x" + [&] {
      char hex[16];
      snprintf(hex, sizeof hex, "%lx", request);
      return std::string(hex);
    }() + " is not on @hype/kvm-sys's allow list").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int result;
  if (spec->arg == HYPE_ARG_NONE) {
    result = ioctl(fd, request, 0UL);
  } else if (spec->arg == HYPE_ARG_INT) {
    uint64_t value = 0;
    if (!ToUint64(env, info[2], "ioctl argument", &value)) return env.Undefined();
    result = ioctl(fd, request, static_cast<unsigned long>(value));
  } else {
    uint8_t* data = nullptr;
    size_t length = 0;
    if (!GetBytes(info[2], &data, &length)) {
      Napi::TypeError::New(env, "ioctl argument must be a TypedArray or DataView").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    size_t needed = BytesUsed(*spec, data, length);
    if (length < needed) {
      Napi::RangeError::New(env, "ioctl buffer holds " + std::to_string(length) + " bytes, the kernel uses " +
                                     std::to_string(needed))
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (request == hype_KVM_ENABLE_CAP) {
      uint32_t cap;
      memcpy(&cap, data, sizeof cap);
      for (size_t i = 0; i < hype_caps_with_host_pointers_count; i++) {
        if (cap == hype_caps_with_host_pointers[i]) {
          Napi::Error::New(env, "KVM_ENABLE_CAP " + std::to_string(cap) + " takes a host pointer and is refused")
              .ThrowAsJavaScriptException();
          return env.Undefined();
        }
      }
    }
    result = ioctl(fd, request, data);
  }
  return result < 0 ? Fail(env, errno) : Napi::Number::New(env, result);
}

// eventfd(initval) -> fd | -errno.  Non-blocking, close-on-exec.
Napi::Value EventFd(const Napi::CallbackInfo& info) {
  unsigned int initval = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
  int fd = eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK);
  return fd < 0 ? Fail(info.Env(), errno) : Napi::Number::New(info.Env(), fd);
}

// eventfdRead(fd) -> counter (bigint, counter reset to 0) | -errno (number; -EAGAIN when it was 0).
Napi::Value EventFdRead(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint64_t value = 0;
  ssize_t n = read(fd, &value, sizeof value);
  if (n < 0) return Fail(info.Env(), errno);
  if (n != sizeof value) return Fail(info.Env(), EIO);
  return Napi::BigInt::New(info.Env(), value);
}

// eventfdWrite(fd, value) -> 0 | -errno.
Napi::Value EventFdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint64_t value = 0;
  if (!ToUint64(env, info[1], "eventfd value", &value)) return env.Undefined();
  ssize_t n = write(fd, &value, sizeof value);
  if (n < 0) return Fail(env, errno);
  return Napi::Number::New(env, 0);
}

}  // namespace

void InitSyscalls(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("ioctl", Napi::Function::New(env, Ioctl, "ioctl"));
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventFdRead, "eventfdRead"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventFdWrite, "eventfdWrite"));
  exports.Set("pageSize", Napi::Number::New(env, sysconf(_SC_PAGESIZE)));
  exports.Set("kickSignal", Napi::Number::New(env, KickSignal()));
}

}  // namespace hype
