// Argument checks shared by every exported function (see common.h).
#include <cmath>

#include "common.h"

namespace hype {

namespace {

constexpr uint64_t kMaxSafeInteger = (1ULL << 53) - 1;

// What a wrong argument was, for the "(got ...)" part of the message. Runs no JS: numbers and bigints
// are formatted by the engine's own ToString, which calls nothing user-defined on primitives.
std::string Describe(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined:
      return "undefined";
    case napi_null:
      return "null";
    case napi_boolean:
      return value.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number:
    case napi_bigint: {
      std::string text = value.ToString().Utf8Value();
      if (text.size() > 40) text = text.substr(0, 37) + "...";
      return value.IsBigInt() ? text + "n" : text;
    }
    case napi_string:
      return "a string";
    case napi_symbol:
      return "a symbol";
    case napi_function:
      return "a function";
    case napi_object:
      if (value.IsTypedArray()) return "a TypedArray";
      if (value.IsDataView()) return "a DataView";
      if (value.IsArrayBuffer()) return "an ArrayBuffer";
      if (value.IsArray()) return "an array";
      return "an object";
    default:
      return "an external";
  }
}

template <typename ErrorType>
void ThrowArgError(const Napi::Value& value, const char* fn, const char* name, const std::string& problem) {
  Napi::Env env = value.Env();
  std::string got = Describe(value);
  if (env.IsExceptionPending()) return;  // never throw on top of a pending exception
  ErrorType::New(env, std::string(fn) + ": " + name + " " + problem + " (got " + got + ")").ThrowAsJavaScriptException();
}

// A Number that is an integer in [0, max] (max <= 2^53 - 1), or nothing; throws nothing.
std::optional<uint64_t> IntegerUpTo(const Napi::Value& value, uint64_t max) {
  double d = value.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > static_cast<double>(max)) return std::nullopt;
  return static_cast<uint64_t>(d);
}

}  // namespace

void ThrowTypeError(const Napi::Value& value, const char* fn, const char* name, const std::string& problem) {
  ThrowArgError<Napi::TypeError>(value, fn, name, problem);
}

void ThrowRangeError(const Napi::Value& value, const char* fn, const char* name, const std::string& problem) {
  ThrowArgError<Napi::RangeError>(value, fn, name, problem);
}

std::optional<uint64_t> ArgUint(const Napi::Value& value, const char* fn, const char* name, uint64_t max) {
  if (!value.IsNumber()) {
    ThrowTypeError(value, fn, name, "must be a non-negative integer");
    return std::nullopt;
  }
  std::optional<uint64_t> result = IntegerUpTo(value, max);
  if (!result) ThrowRangeError(value, fn, name, "must be an integer from 0 to " + std::to_string(max));
  return result;
}

std::optional<int> ArgFd(const Napi::Value& value, const char* fn, const char* name) {
  std::optional<uint64_t> fd = ArgUint(value, fn, name, INT32_MAX);
  if (!fd) return std::nullopt;
  return static_cast<int>(*fd);
}

std::optional<uint32_t> ArgUint32(const Napi::Value& value, const char* fn, const char* name) {
  std::optional<uint64_t> result = ArgUint(value, fn, name, UINT32_MAX);
  if (!result) return std::nullopt;
  return static_cast<uint32_t>(*result);
}

std::optional<uint64_t> ArgUint64(const Napi::Value& value, const char* fn, const char* name) {
  if (value.IsBigInt()) {
    bool lossless = false;
    uint64_t result = value.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) {
      ThrowRangeError(value, fn, name, "must fit in 64 bits unsigned");
      return std::nullopt;
    }
    return result;
  }
  if (!value.IsNumber()) {
    ThrowTypeError(value, fn, name, "must be a bigint or a non-negative integer");
    return std::nullopt;
  }
  std::optional<uint64_t> result = IntegerUpTo(value, kMaxSafeInteger);
  if (!result) ThrowRangeError(value, fn, name, "must be a non-negative safe integer (use a bigint above 2^53)");
  return result;
}

std::optional<bool> ArgBool(const Napi::Value& value, const char* fn, const char* name) {
  if (!value.IsBoolean()) {
    ThrowTypeError(value, fn, name, "must be a boolean");
    return std::nullopt;
  }
  return value.As<Napi::Boolean>().Value();
}

std::optional<std::string> ArgPath(const Napi::Value& value, const char* fn, const char* name) {
  if (!value.IsString()) {
    ThrowTypeError(value, fn, name, "must be a string");
    return std::nullopt;
  }
  std::string path = value.As<Napi::String>().Utf8Value();
  if (path.find('\0') != std::string::npos) {
    ThrowTypeError(value, fn, name, "must not contain NUL characters");
    return std::nullopt;
  }
  return path;
}

std::optional<Napi::Function> ArgFunction(const Napi::Value& value, const char* fn, const char* name) {
  if (!value.IsFunction()) {
    ThrowTypeError(value, fn, name, "must be a function");
    return std::nullopt;
  }
  return value.As<Napi::Function>();
}

std::optional<Bytes> ArgView(const Napi::Value& value, const char* fn, const char* name) {
  Napi::Env env = value.Env();
  Napi::Value buffer;
  size_t offset = 0;
  size_t length = 0;
  if (value.IsTypedArray()) {
    Napi::TypedArray array = value.As<Napi::TypedArray>();
    buffer = array.ArrayBuffer();
    offset = array.ByteOffset();
    length = array.ByteLength();
  } else if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    buffer = view.ArrayBuffer();
    offset = view.ByteOffset();
    length = view.ByteLength();
  } else {
    ThrowTypeError(value, fn, name, "must be a TypedArray or DataView");
    return std::nullopt;
  }
  if (env.IsExceptionPending()) return std::nullopt;
  if (!buffer.IsArrayBuffer()) {  // V8 says false for a SharedArrayBuffer
    ThrowTypeError(value, fn, name, "must not be a view of a SharedArrayBuffer");
    return std::nullopt;
  }
  Napi::ArrayBuffer array_buffer = buffer.As<Napi::ArrayBuffer>();
  if (array_buffer.IsDetached()) {
    ThrowTypeError(value, fn, name, "must not be a view of a detached ArrayBuffer");
    return std::nullopt;
  }
  auto* data = static_cast<uint8_t*>(array_buffer.Data());
  if (env.IsExceptionPending()) return std::nullopt;
  if (data == nullptr) return Bytes{nullptr, 0};
  return Bytes{data + offset, length};
}

}  // namespace hype
