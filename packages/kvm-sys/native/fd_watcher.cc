// Watches an fd for readability on the Node event loop (uv_poll_t). For an eventfd the watcher drains the
// counter itself, so one native->JS call delivers one wake-up with its count and a level-triggered poll
// cannot spin.
#include <unistd.h>
#include <uv.h>

#include <cerrno>

#include "common.h"

namespace hype {

namespace {

class FdWatcher : public Napi::ObjectWrap<FdWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdWatcher",
                       {
                           InstanceMethod<&FdWatcher::Close>("close"),
                           InstanceMethod<&FdWatcher::Ref>("ref"),
                           InstanceMethod<&FdWatcher::Unref>("unref"),
                           InstanceAccessor<&FdWatcher::GetClosed>("closed"),
                       });
  }

  // new FdWatcher(fd, drainEventfd, callback)
  //   callback(result): drainEventfd ? counter (bigint) : poll events (number); a negative number is -errno.
  explicit FdWatcher(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<FdWatcher>(info), context_(info.Env(), "HypeFdWatcher") {
    Napi::Env env = info.Env();
    std::optional<int> fd = ArgFd(info[0], "FdWatcher");
    if (!fd) return;
    std::optional<bool> drain = ArgBool(info[1], "FdWatcher", "drainEventfd");
    if (!drain) return;
    std::optional<Napi::Function> callback = ArgFunction(info[2], "FdWatcher", "callback");
    if (!callback) return;
    fd_ = *fd;
    drain_ = *drain;
    callback_ = Napi::Persistent(*callback);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    int rc = uv_poll_init(loop, handle_, fd_);
    if (rc == 0) {
      handle_->data = this;
      rc = uv_poll_start(handle_, UV_READABLE, OnPoll);
      if (rc != 0) CloseHandle();
    } else {
      delete handle_;
      handle_ = nullptr;
    }
    if (rc != 0) {
      ThrowErrno(env, "uv_poll_start", -rc);
      return;
    }
    Napi::ObjectWrap<FdWatcher>::Ref();  // an active watcher is not garbage collected
    env_ = env;
  }

  ~FdWatcher() override { CloseHandle(); }

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<FdWatcher*>(handle->data);
    if (self == nullptr) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    if (status < 0) {
      CallIntoJs(env, self->callback_, self->Value(), self->context_, {Napi::Number::New(env, status)});
      return;
    }
    if (!self->drain_) {
      CallIntoJs(env, self->callback_, self->Value(), self->context_, {Napi::Number::New(env, events)});
      return;
    }
    uint64_t value = 0;
    ssize_t n = read(self->fd_, &value, sizeof value);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;  // another reader got there first
    if (n < 0) {
      CallIntoJs(env, self->callback_, self->Value(), self->context_, {Napi::Number::New(env, -errno)});
      return;
    }
    CallIntoJs(env, self->callback_, self->Value(), self->context_, {Napi::BigInt::New(env, value)});
  }

  void CloseHandle() {
    if (handle_ == nullptr) return;
    handle_->data = nullptr;
    uv_poll_stop(handle_);
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    handle_ = nullptr;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) {
      CloseHandle();
      Napi::ObjectWrap<FdWatcher>::Unref();
    }
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
    return info.Env().Undefined();
  }

  Napi::Value GetClosed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), handle_ == nullptr);
  }

  Napi::Env env_ = Napi::Env(nullptr);
  int fd_ = -1;
  bool drain_ = false;
  uv_poll_t* handle_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
};

}  // namespace

void InitFdWatcher(Napi::Env env, Napi::Object exports) { exports.Set("FdWatcher", FdWatcher::Define(env)); }

}  // namespace hype
