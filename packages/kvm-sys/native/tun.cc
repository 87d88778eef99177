// TUNSETIFF: attaches an open /dev/net/tun file to a TUN/TAP interface (creating it if it does not exist).
//
// A dedicated function instead of an entry on ioctl()'s allow list: the request's _IOC_SIZE says `int`
// while the kernel reads and writes a whole `struct ifreq` (40 bytes), and only two of its fields are
// used, so the struct is filled here from <linux/if.h> by the compiler (no byte offsets in JS) and the
// name the kernel chose (for a "%d" template) is read back the same way.
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace hype {

namespace {

// tunSetIff(fd, name, flags) -> the interface's name as the kernel set it (string) | -errno (number).
//   name: at most IFNAMSIZ - 1 (15) bytes of UTF-8, no NUL ("" or a "%d" template: the kernel numbers it).
//   flags: ifr_flags, a 16-bit value (IFF_TAP | IFF_NO_PI, ...).
Napi::Value TunSetIff(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::optional<int> fd = ArgFd(info[0], "tunSetIff");
  if (!fd) return env.Undefined();
  std::optional<std::string> name = ArgPath(info[1], "tunSetIff", "name");
  if (!name) return env.Undefined();
  if (name->size() >= IFNAMSIZ) {
    ThrowRangeError(info[1], "tunSetIff", "name", "must be at most " + std::to_string(IFNAMSIZ - 1) + " bytes");
    return env.Undefined();
  }
  std::optional<uint64_t> flags = ArgUint(info[2], "tunSetIff", "flags", 0xffff);
  if (!flags) return env.Undefined();

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name->data(), name->size());
  ifr.ifr_flags = static_cast<short>(static_cast<uint16_t>(*flags));
  if (ioctl(*fd, TUNSETIFF, &ifr) < 0) return Napi::Number::New(env, -errno);
  return Napi::String::New(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
}

}  // namespace

void InitTun(Napi::Env env, Napi::Object exports) {
  exports.Set("tunSetIff", Napi::Function::New(env, TunSetIff, "tunSetIff"));
}

}  // namespace hype
