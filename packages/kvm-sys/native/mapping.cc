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

// Marks objects constructed by Mapping (a prototype chain can be faked, a type tag cannot).
static const napi_type_tag kMappingTypeTag = {0x8f0c6f1d3a2b4e57ULL, 0xb1e94d2a7c3f6a08ULL};

Mapping* Mapping::FromValue(const Napi::Value& value, const char* fn, const char* name) {
  if (!value.IsObject() || !value.As<Napi::Object>().CheckTypeTag(&kMappingTypeTag)) {
    ThrowTypeError(value, fn, name, "must be a Mapping created by @hype/kvm-sys");
    return nullptr;
  }
  Mapping* mapping = Napi::ObjectWrap<Mapping>::Unwrap(value.As<Napi::Object>());
  return value.Env().IsExceptionPending() ? nullptr : mapping;
}

// new Mapping(size)        anonymous private memory, MAP_NORESERVE, excluded from fork()
// new Mapping(size, fd)    MAP_SHARED of fd at offset 0 (a vCPU's kvm_run area)
Mapping::Mapping(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Mapping>(info) {
  Napi::Env env = info.Env();
  std::optional<uint64_t> size = ArgUint64(info[0], "Mapping", "size");
  if (!size) return;
  if (*size == 0 || *size > kMaxMappingSize) {
    ThrowRangeError(info[0], "Mapping", "size", "must be between 1 byte and 4 GiB");
    return;
  }
  long page = sysconf(_SC_PAGESIZE);
  if (*size % page != 0) {
    ThrowRangeError(info[0], "Mapping", "size", "must be a multiple of the page size (" + std::to_string(page) + ")");
    return;
  }
  bool anonymous = info[1].IsUndefined();
  std::optional<int> fd = -1;
  if (!anonymous) fd = ArgFd(info[1], "Mapping");
  if (!fd) return;

  void* addr;
  if (anonymous) {
    addr = mmap(nullptr, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr != MAP_FAILED) madvise(addr, *size, MADV_DONTFORK);  // child processes never copy guest RAM
  } else {
    addr = mmap(nullptr, *size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  }
  if (addr == MAP_FAILED) {
    ThrowErrno(env, "mmap", errno);
    return;
  }
  auto state = std::make_shared<MappingState>();
  state->addr = addr;
  state->size = *size;
  state->anonymous = anonymous;
  auto* hint = new std::shared_ptr<MappingState>(state);
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, addr, *size, FinalizeBuffer, hint);
  if (env.IsExceptionPending()) {  // no ArrayBuffer, so no finalizer will unmap
    delete hint;
    state->Unmap();
    return;
  }
  state_ = state;
  buffer_ = Napi::Persistent(buffer);
  info.This().As<Napi::Object>().TypeTag(&kMappingTypeTag);
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
  const char* fn = "setUserMemoryRegion";
  std::optional<int> vm_fd = ArgFd(info[0], fn, "vmFd");
  if (!vm_fd) return env.Undefined();
  std::optional<uint32_t> slot = ArgUint32(info[1], fn, "slot");
  if (!slot) return env.Undefined();
  std::optional<uint32_t> flags = ArgUint32(info[2], fn, "flags");
  if (!flags) return env.Undefined();
  std::optional<uint64_t> gpa = ArgUint64(info[3], fn, "guestPhysAddr");
  if (!gpa) return env.Undefined();
  Mapping* mapping = Mapping::FromValue(info[4], fn, "mapping");
  if (mapping == nullptr) return env.Undefined();
  MappingState* state = mapping->state().get();
  if (state == nullptr || state->unmapped || !state->anonymous) {
    Napi::Error::New(env, "setUserMemoryRegion: guest memory must be an open anonymous Mapping")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (state->slot_vm_fd >= 0) {
    Napi::Error::New(env, "setUserMemoryRegion: this Mapping already backs a memslot").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Dup first so that a registered slot is always tracked.
  int dup_fd = fcntl(*vm_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return Napi::Number::New(env, -errno);

  kvm_userspace_memory_region region = {};
  region.slot = *slot;
  region.flags = *flags;
  region.guest_phys_addr = *gpa;
  region.memory_size = state->size;
  region.userspace_addr = reinterpret_cast<uint64_t>(state->addr);
  if (ioctl(*vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    int err = errno;
    close(dup_fd);
    return Napi::Number::New(env, -err);
  }
  state->slot_vm_fd = dup_fd;
  state->slot = *slot;
  return Napi::Number::New(env, 0);
}

// removeUserMemoryRegion(mapping): deletes the memslot the mapping backs (no-op if none).
static Napi::Value RemoveUserMemoryRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = Mapping::FromValue(info[0], "removeUserMemoryRegion", "mapping");
  if (mapping == nullptr) return env.Undefined();
  if (mapping->state()) mapping->state()->DeleteSlot();
  return env.Undefined();
}

void InitMapping(Napi::Env env, Napi::Object exports) {
  exports.Set("Mapping", Mapping::Define(env));
  exports.Set("setUserMemoryRegion", Napi::Function::New(env, SetUserMemoryRegion, "setUserMemoryRegion"));
  exports.Set("removeUserMemoryRegion", Napi::Function::New(env, RemoveUserMemoryRegion, "removeUserMemoryRegion"));
}

}  // namespace hype
