// errno formatting and the small helpers every native module uses.
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "common.h"

namespace hype {

static std::string ErrnoName(int err) {
  const char* name = strerrordesc_np(err) ? strerrorname_np(err) : nullptr;
  return name ? name : "E" + std::to_string(err);
}

static std::string ErrnoMessage(int err) {
  const char* desc = strerrordesc_np(err);
  return desc ? desc : "Unknown error " + std::to_string(err);
}

Napi::Error ErrnoError(Napi::Env env, const char* what, int err) {
  std::string message = std::string(what) + " failed: " + ErrnoName(err) + " (" + ErrnoMessage(err) + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("syscall", Napi::String::New(env, what));
  return error;
}

void ThrowErrno(Napi::Env env, const char* what, int err) { ErrnoError(env, what, err).ThrowAsJavaScriptException(); }

void CallIntoJs(Napi::Env env, const Napi::FunctionReference& fn, napi_value receiver, napi_async_context context,
                std::initializer_list<napi_value> args) {
  fn.MakeCallback(receiver, args, context);
  if (env.IsExceptionPending()) {
    Napi::Error error = env.GetAndClearPendingException();
    napi_fatal_exception(env, error.Value());
  }
}

int KickSignal() { return SIGRTMIN + 6; }

static void KickHandler(int) {}

void InstallKickSignalHandler() {
  static std::once_flag once;  // the addon may be loaded by several worker threads
  std::call_once(once, [] {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = KickHandler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(KickSignal(), &action, nullptr);
  });
}

static Napi::Value JsErrnoName(const Napi::CallbackInfo& info) {
  std::optional<uint64_t> err = ArgUint(info[0], "errnoName", "errno", INT32_MAX);
  if (!err) return info.Env().Undefined();
  return Napi::String::New(info.Env(), ErrnoName(static_cast<int>(*err)));
}

static Napi::Value JsErrnoMessage(const Napi::CallbackInfo& info) {
  std::optional<uint64_t> err = ArgUint(info[0], "errnoMessage", "errno", INT32_MAX);
  if (!err) return info.Env().Undefined();
  return Napi::String::New(info.Env(), ErrnoMessage(static_cast<int>(*err)));
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("errnoName", Napi::Function::New(env, JsErrnoName, "errnoName"));
  exports.Set("errnoMessage", Napi::Function::New(env, JsErrnoMessage, "errnoMessage"));
}

}  // namespace hype
