// Numbers from the KVM headers as the C compiler sees them (see kvm_abi.c for why this is C).
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hype_named_value {
  const char* name;
  unsigned long long value;
};

// One struct: its fields' offsets, the first entry being {"size", sizeof}.
struct hype_struct_layout {
  const char* name;
  const struct hype_named_value* fields;
  size_t field_count;
};

extern const struct hype_struct_layout hype_layouts[];
extern const size_t hype_layout_count;
extern const struct hype_named_value hype_ioctls[];
extern const size_t hype_ioctl_count;
extern const struct hype_named_value hype_constants[];
extern const size_t hype_constant_count;

enum hype_ioctl_arg {
  HYPE_ARG_NONE,      // no argument (0)
  HYPE_ARG_INT,       // an integer argument
  HYPE_ARG_STRUCT,    // a pointer to _IOC_SIZE(request) bytes
  HYPE_ARG_VARIABLE,  // a header whose first __u32 counts the entries that follow it
};

struct hype_ioctl_spec {
  unsigned long request;
  enum hype_ioctl_arg arg;
  unsigned int header_size;  // HYPE_ARG_VARIABLE only
  unsigned int entry_size;   // HYPE_ARG_VARIABLE only
};

extern const struct hype_ioctl_spec hype_allowed_ioctls[];
extern const size_t hype_allowed_ioctl_count;

extern const unsigned long hype_KVM_RUN;
extern const unsigned long hype_KVM_SET_USER_MEMORY_REGION;

extern const unsigned long hype_KVM_ENABLE_CAP;
extern const unsigned int hype_caps_with_host_pointers[];
extern const size_t hype_caps_with_host_pointers_count;

// The offset of `field` in `layout` per the C compiler, or (size_t)-1.
size_t hype_offset(const char* layout, const char* field);

#ifdef __cplusplus
}
#endif
