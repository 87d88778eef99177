// Exposes kvm_abi.c's tables to JS (the TypeScript tables in src/ are tested against them), and checks
// at load time that the C++ view of the structs the addon touches directly matches the C one.
#include <linux/kvm.h>

#include <cstddef>

#include "common.h"
#include "kvm_abi.h"
#include "pio_read_mirror.h"

namespace hype {

namespace {

Napi::Object NamedValues(Napi::Env env, const hype_named_value* values, size_t count) {
  Napi::Object out = Napi::Object::New(env);
  for (size_t i = 0; i < count; i++) {
    out.Set(values[i].name, Napi::Number::New(env, static_cast<double>(values[i].value)));
  }
  return out;
}

Napi::Value Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  for (size_t i = 0; i < hype_layout_count; i++) {
    out.Set(hype_layouts[i].name, NamedValues(env, hype_layouts[i].fields, hype_layouts[i].field_count));
  }
  return out;
}

Napi::Value Ioctls(const Napi::CallbackInfo& info) { return NamedValues(info.Env(), hype_ioctls, hype_ioctl_count); }

Napi::Value Constants(const Napi::CallbackInfo& info) {
  return NamedValues(info.Env(), hype_constants, hype_constant_count);
}

// C++ code reads kvm_run and fills kvm_userspace_memory_region through the C++ struct definitions;
// neither has a flexible array, but this makes sure.
bool CppViewMatchesC() {
  struct Check {
    const char* layout;
    const char* field;
    size_t cpp;
  };
  const Check checks[] = {
      {"kvm_run", "size", sizeof(kvm_run)},
      {"kvm_run", "immediate_exit", offsetof(kvm_run, immediate_exit)},
      {"kvm_run", "padding1", offsetof(kvm_run, padding1)},
      {"kvm_run", "exit_reason", offsetof(kvm_run, exit_reason)},
      {"kvm_run", "io_direction", offsetof(kvm_run, io.direction)},
      {"kvm_run", "io_size", offsetof(kvm_run, io.size)},
      {"kvm_run", "io_port", offsetof(kvm_run, io.port)},
      {"kvm_run", "io_count", offsetof(kvm_run, io.count)},
      {"kvm_run", "io_data_offset", offsetof(kvm_run, io.data_offset)},
      {"kvm_run", "s", offsetof(kvm_run, s)},
      {"kvm_userspace_memory_region", "size", sizeof(kvm_userspace_memory_region)},
      {"kvm_userspace_memory_region", "userspace_addr", offsetof(kvm_userspace_memory_region, userspace_addr)},
  };
  for (const Check& check : checks) {
    if (hype_offset(check.layout, check.field) != check.cpp) return false;
  }
  return hype_KVM_RUN == KVM_RUN && hype_KVM_SET_USER_MEMORY_REGION == KVM_SET_USER_MEMORY_REGION;
}

}  // namespace

void InitLayout(Napi::Env env, Napi::Object exports) {
  if (!CppViewMatchesC()) {
    Napi::Error::New(env, "@hype/kvm-sys: the C++ and C views of kvm_run differ; rebuild against matching headers")
        .ThrowAsJavaScriptException();
    return;
  }
  exports.Set("layout", Napi::Function::New(env, Layout, "layout"));
  exports.Set("ioctls", Napi::Function::New(env, Ioctls, "ioctls"));
  exports.Set("constants", Napi::Function::New(env, Constants, "constants"));
  // The read mirror's layout as the C++ code uses it (src/pio-read-mirror.ts is compared with it).
  Napi::Object mirror = Napi::Object::New(env);
  mirror.Set("entries", Napi::Number::New(env, pio_read_mirror::kEntries));
  mirror.Set("entryBytes", Napi::Number::New(env, pio_read_mirror::kEntryBytes));
  mirror.Set("size", Napi::Number::New(env, pio_read_mirror::kSize));
  mirror.Set("validBit", Napi::Number::New(env, pio_read_mirror::kValid));
  mirror.Set("portShift", Napi::Number::New(env, pio_read_mirror::kPortShift));
  mirror.Set("valueMask", Napi::Number::New(env, pio_read_mirror::kValueMask));
  exports.Set("pioReadMirrorLayout", mirror);
}

}  // namespace hype
