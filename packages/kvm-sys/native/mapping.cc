// Guest RAM (anonymous, MAP_NORESERVE) and vCPU kvm_run pages (MAP_SHARED of the vCPU fd), each exposed
// as one external ArrayBuffer that close() detaches before munmap, so JS can never touch freed memory.
#include "mapping.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace hype {

// Node 20 cannot hold an external ArrayBuffer above 4 GiB.
static constexpr uint64_t kMaxMappingSize = 4ULL << 30;

void MappingState::DeleteSlot() {
  if (slot_vm_fd < 0) return;
  kvm_userspace_memory_region region = {};
  region.slot = slot;
  ioctl(slot_vm_fd, KVM_SET_USER_MEMORY_REGION, &region);  // memory_size 0 = delete the slot
  close(slot_vm_fd);
  slot_vm_fd = -1;
}

void MappingState::Unmap() {
  if (unmapped) return;
  DeleteSlot();
  munmap(addr, size);
  unmapped = true;
}

static void FinalizeBuffer(Napi::Env, void*, std::shared_ptr<MappingState>* hint) {
  // The ArrayBuffer is gone (garbage collected, detached by close(), or the environment is exiting).
  if ((*hint)->pins == 0) (*hint)->Unmap();
  delete hint;
}

Napi::Function Mapping::Define(Napi::Env env) {
  return DefineClass(env, "Mapping",
                     {
                         InstanceAccessor<&Mapping::GetBuffer>("buffer"),
                         InstanceAccessor<&Mapping::GetSize>("size"),
                         InstanceAccessor<&Mapping::GetClosed>("closed"),
                         InstanceMethod<&Mapping::Close>("close"),
                     });
}

Mapping* Mapping::FromValue(Napi::Env env, const Napi::Value& value) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(data->mapping_constructor.Value())) {
    Napi::TypeError::New(env, "expected a Mapping created by @hype/kvm-sys").ThrowAsJavaScriptException();
    return nullptr;
  }
  return Napi::ObjectWrap<Mapping>::Unwrap(value.As<Napi::Object>());
}

// new Mapping(size)        anonymous private memory, MAP_NORESERVE, excluded from fork()
// new Mapping(size, fd)    MAP_SHARED of fd at offset 0 (a vCPU's kvm_run area)
Mapping::Mapping(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Mapping>(info) {
  Napi::Env env = info.Env();
  uint64_t size = 0;
  if (!ToUint64(env, info[0], "mapping size", &size)) return;
  if (size == 0 || size > kMaxMappingSize) {
    Napi::RangeError::New(env, "mapping size must be between 1 byte and 4 GiB").ThrowAsJavaScriptException();
    return;
  }
  long page = sysconf(_SC_PAGESIZE);
  if (size % page != 0) {
    Napi::RangeError::New(env, "mapping size must be a multiple of the page size (" + std::to_string(page) + ")")
        .ThrowAsJavaScriptException();
    return;
  }
  bool anonymous = info.Length() < 2 || info[1].IsUndefined();
  void* addr;
  if (anonymous) {
    addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr != MAP_FAILED) madvise(addr, size, MADV_DONTFORK);  // child processes never copy guest RAM
  } else {
    int fd = info[1].As<Napi::Number>().Int32Value();
    addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  }
  if (addr == MAP_FAILED) {
    ThrowErrno(env, "mmap", errno);
    return;
  }
  state_ = std::make_shared<MappingState>();
  state_->addr = addr;
  state_->size = size;
  state_->anonymous = anonymous;
  auto* hint = new std::shared_ptr<MappingState>(state_);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, addr, size, FinalizeBuffer, hint);
  buffer_ = Napi::Persistent(buffer);
}

Mapping::~Mapping() {
  // The ArrayBuffer may outlive this object (a view still holds it); its finalizer unmaps then.
  buffer_.Reset();
}

Napi::Value Mapping::GetBuffer(const Napi::CallbackInfo& info) {
  if (!state_ || state_->unmapped || buffer_.IsEmpty()) return info.Env().Undefined();
  return buffer_.Value();
}

Napi::Value Mapping::GetSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), state_ ? static_cast<double>(state_->size) : 0);
}

Napi::Value Mapping::GetClosed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !state_ || state_->unmapped);
}

Napi::Value Mapping::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!state_ || state_->unmapped) return env.Undefined();
  if (state_->pins > 0) {
    Napi::Error::New(env, "cannot unmap: the mapping is in use by a running vCPU thread").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!buffer_.IsEmpty()) {
    Napi::ArrayBuffer buffer = buffer_.Value();
    if (!buffer.IsDetached()) buffer.Detach();
    buffer_.Reset();
  }
  state_->Unmap();
  return env.Undefined();
}

// setUserMemoryRegion(vmFd, slot, flags, guestPhysAddr, mapping) -> 0 | -errno
// Registers the whole mapping as memslot `slot` of the VM. A mapping backs at most one memslot.
static Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int vm_fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t slot = info[1].As<Napi::Number>().Uint32Value();
  uint32_t flags = info[2].As<Napi::Number>().Uint32Value();
  uint64_t gpa = 0;
  if (!ToUint64(env, info[3], "guest physical address", &gpa)) return env.Undefined();
  Mapping* mapping = Mapping::FromValue(env, info[4]);
  if (mapping == nullptr) return env.Undefined();
  MappingState* state = mapping->state().get();
  if (state == nullptr || state->unmapped || !state->anonymous) {
    Napi::Error::New(env, "guest memory must be an open anonymous Mapping").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (state->slot_vm_fd >= 0) {
    Napi::Error::New(env, "this Mapping already backs a memslot").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Dup first so that a registered slot is always tracked.
  int dup_fd = fcntl(vm_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return Napi::Number::New(env, -errno);

  kvm_userspace_memory_region region = {};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = state->size;
  region.userspace_addr = reinterpret_cast<uint64_t>(state->addr);
  if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    int err = errno;
    close(dup_fd);
    return Napi::Number::New(env, -err);
  }
  state->slot_vm_fd = dup_fd;
  state->slot = slot;
  return Napi::Number::New(env, 0);
}

// removeUserMemoryRegion(mapping): deletes the memslot the mapping backs (no-op if none).
static Napi::Value RemoveUserMemoryRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Mapping::FromValue(env, info[0]);
  if (mapping == nullptr) return env.Undefined();
  if (mapping->state()) mapping->state()->DeleteSlot();
  return env.Undefined();
}

void InitMapping(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor = Mapping::Define(env);
  env.GetInstanceData<AddonData>()->mapping_constructor = Napi::Persistent(constructor);
  exports.Set("Mapping", constructor);
  exports.Set("setUserMemoryRegion", Napi::Function::New(env, SetUserMemoryRegion, "setUserMemoryRegion"));
  exports.Set("removeUserMemoryRegion", Napi::Function::New(env, RemoveUserMemoryRegion, "removeUserMemoryRegion"));
}

}  // namespace hype
