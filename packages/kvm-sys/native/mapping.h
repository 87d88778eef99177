// An addon-owned mmap exposed to JS as one external ArrayBuffer.
#pragma once

#include <memory>

#include "common.h"

namespace hype {

// Shared between the Mapping object and the ArrayBuffer's finalizer: whichever comes first unmaps.
struct MappingState {
  void* addr = nullptr;
  size_t size = 0;
  bool anonymous = true;
  bool unmapped = false;
  int pins = 0;  // running users (a VcpuThread on its kvm_run page): unmapping is refused meanwhile
  // The memslot backed by this memory (at most one): a dup of the VM fd, and the slot number. The slot is
  // deleted (and the dup closed) before the memory is unmapped, so a memslot can never point at memory
  // the process no longer owns, whatever order JS closes things in.
  int slot_vm_fd = -1;
  uint32_t slot = 0;

  void DeleteSlot();
  void Unmap();
};

class Mapping : public Napi::ObjectWrap<Mapping> {
 public:
  static Napi::Function Define(Napi::Env env);
  // The Mapping behind argument `name` of `fn`, or nullptr (with a pending TypeError) if it is not one.
  static Mapping* FromValue(const Napi::Value& value, const char* fn, const char* name);

  explicit Mapping(const Napi::CallbackInfo& info);
  ~Mapping() override;

  const std::shared_ptr<MappingState>& state() const { return state_; }

 private:
  Napi::Value GetBuffer(const Napi::CallbackInfo& info);
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<MappingState> state_;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
};

}  // namespace hype
