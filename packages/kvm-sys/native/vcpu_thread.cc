// One native thread per vCPU looping on KVM_RUN; exits are handed to the JS thread.
//
//   vCPU thread                                  JS thread
//   ioctl(KVM_RUN) returns an exit  ──TSFN──▶    onExit(): device model reads/writes kvm_run
//   waits (spin, then condvar)      ◀─resume()─  completes the exit
//   ioctl(KVM_RUN) ...
//
// stop(): set the stop flag and kvm_run.immediate_exit, then pthread_kill(kick signal) — the signal
// interrupts a KVM_RUN in progress (EINTR), immediate_exit makes one about to start return at once.
// An exit already handed to JS is still completed before the thread ends, and the thread's last
// KVM_RUN (with immediate_exit) lets KVM finish that instruction. join() (used by close and at environment
// teardown) additionally abandons a pending exit and waits for the thread to end.
//
// Mirrored reads (options.pioReadMirror, see pio_read_mirror.h): a 1-byte, non-string IN from a port
// the table holds a valid value for is answered here (the value goes into kvm_run's data area, which
// KVM_RUN consumes on re-entry) and the thread re-enters KVM_RUN at once: no event, no JS. Only reads the
// device model published as side-effect free take this path; everything else still goes to JS.
//
// Polling for the next exit (resumeAndPoll(budgetNs), JS thread): instead of returning to the event loop
// after completing an exit, JS may wait a short, bounded time for this thread's next exit. poll_state_
// decides which path delivers each exit, so exactly one does:
//   JS:    Idle -> Spinning, then resume; (-> Sleeping on a futex); timeout: CAS back to Idle, which
//          fails only if the state is Handed (the exit is then taken after all)
//   vCPU:  on an exit, CAS Spinning|Sleeping -> Handed (FUTEX_WAKE if Sleeping): the poller takes the exit
//          and resets Idle; if it finds Idle, the exit goes through the TSFN as usual.
// After handing an exit to a poller the thread spins (for the poll's spin time) waiting for resume(): JS
// is handling that exit right now. A poll does not start, and its busy phase gives up, when any vCPU thread
// has an event queued on a TSFN (another vCPU's exit, this thread's end); the futex phase (only when
// spinNs < budgetNs) looks again each time it wakes, at the latest at the deadline (1 ms at most). None
// starts once a stop is requested.
//
// resumeToExitNs: from the JS thread's resume() (or resumeAndPoll(), or start()) of the previous exit to
// the exit now pending: this thread's wake-up if it had gone to sleep, the guest's run, mirrored reads in
// between. That is what a poll for this exit would have waited, which JS learns per exit site to decide
// where polling pays. Stored before the exit is handed over (TSFN or poller), so the handler always reads
// this exit's value. deliveryNs: how long the last exit that went through the TSFN took from KVM_RUN's
// return to onExit (the JS thread's wake-up and event-loop turn): what a poll saves when it catches an exit.
#include <linux/kvm.h>
#include <pthread.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "mapping.h"
#include "pio_read_mirror.h"

namespace hype {

namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Events posted to any vCPU thread's TSFN and not yet delivered: a poll stops waiting when one is queued.
std::atomic<int> queued_events{0};

void FutexWait(std::atomic<int>* word, int expected, uint64_t timeout_ns) {
  timespec ts = {static_cast<time_t>(timeout_ns / 1000000000), static_cast<long>(timeout_ns % 1000000000)};
  syscall(SYS_futex, reinterpret_cast<int*>(word), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
}

void FutexWake(std::atomic<int>* word) {
  syscall(SYS_futex, reinterpret_cast<int*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

// kvm_run fields the thread touches, through volatile so every access really goes to the shared page.
inline void SetImmediateExit(kvm_run* run, uint8_t value) {
  reinterpret_cast<volatile uint8_t*>(&run->immediate_exit)[0] = value;
}

class VcpuThread : public Napi::ObjectWrap<VcpuThread> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VcpuThread",
                       {
                           InstanceMethod<&VcpuThread::Start>("start"),
                           InstanceMethod<&VcpuThread::Resume>("resume"),
                           InstanceMethod<&VcpuThread::ResumeAndPoll>("resumeAndPoll"),
                           InstanceMethod<&VcpuThread::Stop>("stop"),
                           InstanceMethod<&VcpuThread::Join>("join"),
                           InstanceMethod<&VcpuThread::Probe>("probe"),
                           InstanceAccessor<&VcpuThread::GetProbeResult>("probeResult"),
                           InstanceAccessor<&VcpuThread::GetTid>("tid"),
                           InstanceAccessor<&VcpuThread::GetRunning>("running"),
                           InstanceAccessor<&VcpuThread::GetExitPending>("exitPending"),
                           InstanceAccessor<&VcpuThread::GetPioMirrorHits>("pioMirrorHits"),
                           InstanceAccessor<&VcpuThread::GetPolledExits>("polledExits"),
                           InstanceAccessor<&VcpuThread::GetResumeToExitNs>("resumeToExitNs"),
                           InstanceAccessor<&VcpuThread::GetDeliveryNs>("deliveryNs"),
                       });
  }

  // new VcpuThread(vcpuFd, runMapping, onExit, onStop, { spinNs = 0, simulate = false, pioReadMirror })
  //   onExit(): an exit is in kvm_run; call resume() when it is complete (possibly later, asynchronously).
  //   onStop(errno): the thread ended (0 = stopped on request, else KVM_RUN's errno).
  //   simulate: KVM_RUN is replaced by a stand-in (see SimulatedRun) so the threading can be tested
  //   without /dev/kvm.
  //   pioReadMirror: a Mapping of at least pio_read_mirror::kSize bytes holding the read mirror (shared by
  //   any number of threads); kept mapped while the thread runs.
  explicit VcpuThread(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<VcpuThread>(info), context_(info.Env(), "HypeVcpuThread") {
    Napi::Env env = info.Env();
    env_ = env;
    const char* fn = "VcpuThread";
    // The simulated KVM_RUN uses no fd: -1 is accepted with options.simulate (checked below).
    bool no_fd = info[0].IsNumber() && info[0].As<Napi::Number>().DoubleValue() == -1;
    std::optional<int> fd = no_fd ? -1 : ArgFd(info[0], fn, "vcpuFd");
    if (!fd) return;
    Mapping* mapping = Mapping::FromValue(info[1], fn, "run");
    if (mapping == nullptr) return;
    std::optional<Napi::Function> on_exit = ArgFunction(info[2], fn, "onExit");
    if (!on_exit) return;
    std::optional<Napi::Function> on_stop = ArgFunction(info[3], fn, "onStop");
    if (!on_stop) return;
    // Options may have getters (JS): read them before looking at the mapping's state.
    if (!ReadOptions(info[4])) return;
    if (no_fd && !simulate_) {
      ThrowRangeError(info[0], fn, "vcpuFd", "must be an integer from 0 to 2147483647 (-1 only with options.simulate)");
      return;
    }
    run_state_ = mapping->state();
    if (!run_state_ || run_state_->unmapped || run_state_->size < sizeof(kvm_run)) {
      Napi::Error::New(env, "VcpuThread: the kvm_run mapping is closed or too small").ThrowAsJavaScriptException();
      return;
    }
    fd_ = *fd;
    run_ = static_cast<kvm_run*>(run_state_->addr);
    if (!mirror_value_.IsEmpty()) {
      Mapping* mirror = Mapping::FromValue(mirror_value_.Value(), fn, "options.pioReadMirror");
      if (mirror == nullptr) return;
      mirror_state_ = mirror->state();
      if (!mirror_state_ || mirror_state_->unmapped || mirror_state_->size < pio_read_mirror::kSize) {
        Napi::Error::New(env, "VcpuThread: the pioReadMirror mapping is closed or too small").ThrowAsJavaScriptException();
        return;
      }
      mirror_ = static_cast<const uint32_t*>(mirror_state_->addr);
    }
    run_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
    on_exit_ = Napi::Persistent(*on_exit);
    on_stop_ = Napi::Persistent(*on_stop);
    InstallKickSignalHandler();
    napi_add_env_cleanup_hook(env, OnEnvCleanup, this);
  }

  ~VcpuThread() override {
    if (run_ != nullptr) napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
  }

 private:
  enum class EventKind { Exit, Stopped };
  struct Event {
    EventKind kind;
    uint64_t generation;
    int err;
  };

  // Longest busy-wait for resume() that options.spinNs may ask for.
  static constexpr uint64_t kMaxSpinNs = 1000000000;
  // Longest resumeAndPoll() budget.
  static constexpr uint64_t kMaxPollNs = 1000000;

  enum PollState : int { kPollIdle = 0, kPollSpinning = 1, kPollSleeping = 2, kPollHanded = 3 };

  // { spinNs = 0, simulate = false } or undefined.
  bool ReadOptions(const Napi::Value& value) {
    const char* fn = "VcpuThread";
    if (value.IsUndefined()) return true;
    if (!value.IsObject()) {
      ThrowTypeError(value, fn, "options", "must be an object or undefined");
      return false;
    }
    Napi::Object options = value.As<Napi::Object>();
    Napi::Value spin = options.Get("spinNs");
    if (env_.IsExceptionPending()) return false;
    if (!spin.IsUndefined()) {
      std::optional<uint64_t> spin_ns = ArgUint(spin, fn, "options.spinNs", kMaxSpinNs);
      if (!spin_ns) return false;
      spin_ns_ = static_cast<int64_t>(*spin_ns);
    }
    Napi::Value simulate = options.Get("simulate");
    if (env_.IsExceptionPending()) return false;
    if (!simulate.IsUndefined()) {
      std::optional<bool> flag = ArgBool(simulate, fn, "options.simulate");
      if (!flag) return false;
      simulate_ = *flag;
    }
    Napi::Value mirror = options.Get("pioReadMirror");
    if (env_.IsExceptionPending()) return false;
    if (!mirror.IsUndefined()) {
      if (!mirror.IsObject()) {
        ThrowTypeError(mirror, fn, "options.pioReadMirror", "must be a Mapping created by @hype/kvm-sys or undefined");
        return false;
      }
      mirror_value_ = Napi::Persistent(mirror.As<Napi::Object>());  // checked once all options are read
    }
    return true;
  }

  static void OnEnvCleanup(void* arg) { static_cast<VcpuThread*>(arg)->JoinThread(); }

  // ---- vCPU thread side ----

  static void* ThreadMain(void* arg) {
    static_cast<VcpuThread*>(arg)->Loop();
    return nullptr;
  }

  int RunOnce() { return simulate_ ? SimulatedRun() : ioctl(fd_, KVM_RUN, 0); }

  // Stand-in for KVM_RUN with the same contract for what the thread relies on: EINTR when
  // immediate_exit is set or the kick signal arrives; otherwise an exit. kvm_run.padding1[0] = 1 makes
  // it block like a guest that never exits; else it reports a 1-byte OUT to port 0x10 whose data byte
  // counts the exits. kvm_run.padding1[1] = N > 0: before each OUT, N 1-byte INs from port 0x11, and the
  // OUT's data byte is the value the last IN read (consumed at the next "KVM_RUN", as KVM does).
  int SimulatedRun() {
    volatile kvm_run* run = run_;
    uint8_t* page = reinterpret_cast<uint8_t*>(run_);
    const uint64_t data_offset = 0x100 + offsetof(kvm_run, s);
    if (simulated_in_pending_) {
      simulated_last_in_ = page[data_offset];
      simulated_in_pending_ = false;
    }
    for (;;) {
      if (run->immediate_exit) {
        errno = EINTR;
        return -1;
      }
      if (run->padding1[0] == 0) break;
      timespec ts = {0, 1000000};
      if (nanosleep(&ts, nullptr) < 0) return -1;  // EINTR from the kick signal
    }
    const uint8_t ins = run->padding1[1];
    run->exit_reason = KVM_EXIT_IO;
    run->io.size = 1;
    run->io.count = 1;
    run->io.data_offset = data_offset;
    if (simulated_ins_done_ < ins) {
      simulated_ins_done_++;
      run->io.direction = KVM_EXIT_IO_IN;
      run->io.port = 0x11;
      page[data_offset] = 0xff;
      simulated_in_pending_ = true;
      return 0;
    }
    simulated_ins_done_ = 0;
    run->io.direction = KVM_EXIT_IO_OUT;
    run->io.port = 0x10;
    ++simulated_exits_;
    page[data_offset] = ins > 0 ? simulated_last_in_ : static_cast<uint8_t>(simulated_exits_);
    return 0;
  }

  void Loop() {
    sigset_t mask;
    sigfillset(&mask);
    sigdelset(&mask, KickSignal());
    pthread_sigmask(SIG_SETMASK, &mask, nullptr);  // only the kick may interrupt KVM_RUN here

    const uint64_t generation = thread_generation_;
    tid_.store(static_cast<int>(syscall(SYS_gettid)), std::memory_order_release);
    int err = 0;
    for (;;) {
      // Stopping still enters KVM_RUN once, with immediate_exit set: KVM finishes the instruction of the
      // exit JS just completed (advances RIP, consumes IN/MMIO-read data) and returns EINTR, so the
      // registers read after a stop are consistent (Documentation/virt/kvm/api.rst, immediate_exit).
      const bool stopping = stop_requested_.load(std::memory_order_acquire);
      if (stopping) SetImmediateExit(run_, 1);
      if (RunOnce() < 0) {
        int e = errno;
        if (e == EINTR || e == EAGAIN) {
          if (stopping) break;
          if (probe_requested_.exchange(false, std::memory_order_acq_rel)) ProbeState();
          continue;
        }
        err = e;
        break;
      }
      if (mirror_ != nullptr && AnswerFromMirror()) {
        pio_mirror_hits_.fetch_add(1, std::memory_order_relaxed);
        continue;  // re-enter KVM_RUN (after the stop check at the top): no JS round trip
      }
      // resumed_at_ns_ was written before the resume this thread acquired; published by the hand-over below.
      const uint64_t exited = NowNs();
      exited_at_ns_.store(exited, std::memory_order_relaxed);
      resume_to_exit_ns_.store(exited - resumed_at_ns_.load(std::memory_order_relaxed), std::memory_order_relaxed);
      resumed_.store(false, std::memory_order_relaxed);
      if (HandToPoller()) {
        WaitForResume(poll_resume_spin_ns_.load(std::memory_order_relaxed));
      } else {
        if (!Post(EventKind::Exit, generation, 0)) break;  // environment shutting down
        WaitForResume(spin_ns_);
      }
      if (abandon_.load(std::memory_order_acquire)) break;
    }
    Post(EventKind::Stopped, generation, err);
    napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  }

  // A 1-byte, non-string IN from a port with a valid mirror entry: writes the value into kvm_run's data
  // area and returns true. kvm_run is read through volatile (KVM writes it; the data offset is checked
  // against the mapping all the same).
  bool AnswerFromMirror() {
    volatile kvm_run* run = run_;
    if (run->exit_reason != KVM_EXIT_IO) return false;
    if (run->io.direction != KVM_EXIT_IO_IN || run->io.size != 1 || run->io.count != 1) return false;
    const uint64_t data_offset = run->io.data_offset;
    if (data_offset >= run_state_->size) return false;
    const int value = pio_read_mirror::Lookup(mirror_, run->io.port);
    if (value < 0) return false;
    reinterpret_cast<volatile uint8_t*>(run_)[data_offset] = static_cast<uint8_t>(value);
    return true;
  }

  // Out of KVM_RUN on a kick from probe(): this thread owns the vCPU, so its state can be read here
  // without pausing anything; the guest resumes right after (two ioctls, no JS round trip).
  void ProbeState() {
    kvm_mp_state mp{};
    kvm_regs regs{};
    if (simulate_) {
      mp.mp_state = KVM_MP_STATE_RUNNABLE;
    } else if (ioctl(fd_, KVM_GET_MP_STATE, &mp) < 0 || ioctl(fd_, KVM_GET_REGS, &regs) < 0) {
      probe_errno_.store(errno, std::memory_order_relaxed);
      probe_count_.fetch_add(1, std::memory_order_release);
      return;
    }
    probe_errno_.store(0, std::memory_order_relaxed);
    probe_mp_state_.store(mp.mp_state, std::memory_order_relaxed);
    probe_rflags_.store(regs.rflags, std::memory_order_relaxed);
    probe_count_.fetch_add(1, std::memory_order_release);
  }

  bool Post(EventKind kind, uint64_t generation, int err) {
    auto* event = new Event{kind, generation, err};
    queued_events.fetch_add(1, std::memory_order_acq_rel);
    if (napi_call_threadsafe_function(tsfn_, event, napi_tsfn_blocking) != napi_ok) {
      queued_events.fetch_sub(1, std::memory_order_acq_rel);
      delete event;
      return false;
    }
    return true;
  }

  // The exit now in kvm_run goes to a JS thread waiting in resumeAndPoll(), if there is one.
  bool HandToPoller() {
    int state = poll_state_.load(std::memory_order_acquire);
    while (state == kPollSpinning || state == kPollSleeping) {
      if (poll_state_.compare_exchange_weak(state, kPollHanded, std::memory_order_acq_rel, std::memory_order_acquire)) {
        if (state == kPollSleeping) FutexWake(&poll_state_);
        return true;
      }
    }
    return false;
  }

  void WaitForResume(int64_t spin_ns) {
    if (spin_ns > 0) {
      const uint64_t deadline = NowNs() + static_cast<uint64_t>(spin_ns);
      for (unsigned i = 1;; i++) {
        if (resumed_.load(std::memory_order_acquire) || abandon_.load(std::memory_order_acquire)) return;
        if ((i & 63) == 0 && NowNs() > deadline) break;
        CpuRelax();
      }
    }
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [this] {
      return resumed_.load(std::memory_order_acquire) || abandon_.load(std::memory_order_acquire);
    });
  }

  // ---- JS thread side ----

  static void CallJs(napi_env raw_env, napi_value, void* context, void* data) {
    auto* self = static_cast<VcpuThread*>(context);
    auto* event = static_cast<Event*>(data);
    queued_events.fetch_sub(1, std::memory_order_acq_rel);
    if (raw_env != nullptr) self->Deliver(*event);
    delete event;
  }

  static void OnTsfnFinalize(napi_env, void*, void* context) {
    auto* self = static_cast<VcpuThread*>(context);
    self->Napi::ObjectWrap<VcpuThread>::Unref();  // taken in Start(): the thread no longer uses `self`
  }

  void Deliver(const Event& event) {
    if (event.generation != generation_ || !thread_alive_) return;  // from a thread join() already ended
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    if (event.kind == EventKind::Exit) {
      exit_pending_ = true;
      delivery_ns_ = NowNs() - exited_at_ns_.load(std::memory_order_relaxed);
      CallIntoJs(env, on_exit_, Value(), context_, {});
      return;
    }
    pthread_join(thread_, nullptr);  // the thread posted its last event and is returning
    Finish();
    CallIntoJs(env, on_stop_, Value(), context_, {Napi::Number::New(env, event.err)});
  }

  void Finish() {
    thread_alive_ = false;
    exit_pending_ = false;
    generation_++;
    run_state_->pins--;
    if (mirror_state_) mirror_state_->pins--;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (thread_alive_) {
      Napi::Error::New(env, "the vCPU thread is already running").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (run_state_->unmapped) {
      Napi::Error::New(env, "the kvm_run mapping is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (mirror_state_ && mirror_state_->unmapped) {
      Napi::Error::New(env, "the pioReadMirror mapping is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    stop_requested_ = false;
    abandon_ = false;
    resumed_ = false;
    poll_state_ = kPollIdle;
    resumed_at_ns_ = NowNs();
    SetImmediateExit(run_, 0);
    thread_generation_ = generation_;

    napi_value name = Napi::String::New(env, "HypeVcpuThread");
    napi_status status = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0 /* unlimited queue */, 1,
                                                         nullptr, OnTsfnFinalize, this, CallJs, &tsfn_);
    if (status != napi_ok) {
      Napi::Error::New(env, "napi_create_threadsafe_function failed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::ObjectWrap<VcpuThread>::Ref();

    // Create the thread with every signal blocked so nothing but the kick ever lands on it.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int rc = pthread_create(&thread_, nullptr, ThreadMain, this);
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (rc != 0) {
      napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
      ThrowErrno(env, "pthread_create", rc);
      return env.Undefined();
    }
    run_state_->pins++;
    if (mirror_state_) mirror_state_->pins++;
    thread_alive_ = true;
    return env.Undefined();
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!exit_pending_) {
      Napi::Error::New(env, "resume(): no exit is pending").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    exit_pending_ = false;
    resumed_at_ns_.store(NowNs(), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      resumed_.store(true, std::memory_order_release);
    }
    wake_.notify_one();
    return env.Undefined();
  }

  // resumeAndPoll(budgetNs, spinNs = budgetNs): resume(), then wait up to budgetNs for the thread's next
  // exit, the first spinNs of it busy (in the nested rig, sleeping on the futex cost more than the TSFN
  // path). True: that exit is now pending (as if onExit had been called; complete it with resume() or
  // resumeAndPoll()); false: none came in time, or polling is pointless (stopping, an event of any vCPU
  // thread queued) and the next exit is delivered to onExit. The poller is registered before the thread
  // is woken: otherwise a fast next exit would find no poller and take the TSFN.
  Napi::Value ResumeAndPoll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::optional<uint64_t> budget = ArgUint(info[0], "resumeAndPoll", "budgetNs", kMaxPollNs);
    if (!budget) return env.Undefined();
    uint64_t spin = *budget;
    if (!info[1].IsUndefined()) {
      std::optional<uint64_t> arg = ArgUint(info[1], "resumeAndPoll", "spinNs", kMaxPollNs);
      if (!arg) return env.Undefined();
      spin = std::min(*budget, *arg);
    }
    if (!exit_pending_) {
      Napi::Error::New(env, "resumeAndPoll(): no exit is pending").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    const bool poll = *budget > 0 && !stop_requested_.load(std::memory_order_acquire) &&
                      queued_events.load(std::memory_order_acquire) == 0;
    if (poll) {
      // The thread spins this long for resume() after handing an exit over: JS is handling it right now. At
      // least options.spinNs, the time it gives any handler: a poll's budget is the guest's time, not the
      // handler's, and a thread asleep when the handler completes makes the next poll wait for its wake-up.
      const uint64_t handler_spin = static_cast<uint64_t>(std::max<int64_t>(spin_ns_, 0));
      poll_resume_spin_ns_.store(static_cast<int64_t>(std::max({spin, handler_spin, uint64_t{2000}})), std::memory_order_relaxed);
      poll_state_.store(kPollSpinning, std::memory_order_seq_cst);
    }
    exit_pending_ = false;
    resumed_at_ns_.store(NowNs(), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      resumed_.store(true, std::memory_order_release);
    }
    wake_.notify_one();
    return Napi::Boolean::New(env, poll && Poll(*budget, spin));
  }

  // Waits for the thread to hand over its next exit (poll_state_ is Spinning).
  bool Poll(uint64_t budget_ns, uint64_t spin_ns) {
    const uint64_t start = NowNs();
    const uint64_t deadline = start + budget_ns;
    const uint64_t spin_deadline = start + spin_ns;
    int expected = kPollSpinning;
    for (unsigned i = 1;; i++) {
      if (poll_state_.load(std::memory_order_acquire) == kPollHanded) return TakePolledExit();
      if ((i & 31) == 0 && (NowNs() > spin_deadline || queued_events.load(std::memory_order_relaxed) > 0)) break;
      CpuRelax();
    }
    if (NowNs() < deadline && queued_events.load(std::memory_order_acquire) == 0) {
      if (!poll_state_.compare_exchange_strong(expected, kPollSleeping, std::memory_order_acq_rel)) {
        return TakePolledExit();  // Handed meanwhile
      }
      expected = kPollSleeping;
      for (;;) {
        const uint64_t now = NowNs();
        if (now >= deadline) break;
        FutexWait(&poll_state_, kPollSleeping, deadline - now);
        if (poll_state_.load(std::memory_order_acquire) == kPollHanded) return TakePolledExit();
        if (queued_events.load(std::memory_order_acquire) > 0) break;
      }
    }
    // Give up; the CAS fails only if the thread handed an exit over at the last moment: take it.
    if (poll_state_.compare_exchange_strong(expected, kPollIdle, std::memory_order_acq_rel)) return false;
    return TakePolledExit();
  }

  bool TakePolledExit() {
    poll_state_.store(kPollIdle, std::memory_order_relaxed);
    exit_pending_ = true;
    polled_exits_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  void Kick() {
    SetImmediateExit(run_, 1);
    pthread_kill(thread_, KickSignal());
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (thread_alive_ && !stop_requested_.exchange(true)) Kick();
    return info.Env().Undefined();
  }

  // Ends the thread now and waits for it. Returns false if it did not end within ~5 s (a KVM_RUN that
  // ignores signals): the thread is then detached and its kvm_run page stays mapped for good.
  bool JoinThread() {
    if (!thread_alive_) return true;
    stop_requested_ = true;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      abandon_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
    for (int attempt = 0; attempt < 500; attempt++) {
      Kick();
      timespec deadline;
      clock_gettime(CLOCK_REALTIME, &deadline);
      deadline.tv_nsec += 10000000;
      if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
      }
      if (pthread_timedjoin_np(thread_, nullptr, &deadline) == 0) {
        Finish();
        return true;
      }
    }
    pthread_detach(thread_);
    napi_unref_threadsafe_function(env_, tsfn_);  // a stuck thread must not keep the process alive
    thread_alive_ = false;
    generation_++;
    return false;  // pins stay: the page is never unmapped under the thread
  }

  Napi::Value Join(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), JoinThread()); }

  // probe(): kicks the thread out of KVM_RUN (no immediate_exit, so it re-enters at once) to record
  // the vCPU's MP state and RFLAGS in probeResult. A kick that lands outside KVM_RUN is not seen until
  // the next one: callers probe again later.
  Napi::Value Probe(const Napi::CallbackInfo& info) {
    if (thread_alive_ && !stop_requested_.load(std::memory_order_acquire)) {
      probe_requested_.store(true, std::memory_order_release);
      pthread_kill(thread_, KickSignal());
    }
    return info.Env().Undefined();
  }

  // { count, mpState, rflags, errno }: count is how many probes completed so far.
  Napi::Value GetProbeResult(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object result = Napi::Object::New(env);
    const uint64_t count = probe_count_.load(std::memory_order_acquire);
    result.Set("count", Napi::Number::New(env, static_cast<double>(count)));
    result.Set("mpState", Napi::Number::New(env, probe_mp_state_.load(std::memory_order_relaxed)));
    result.Set("rflags", Napi::Number::New(env, static_cast<double>(probe_rflags_.load(std::memory_order_relaxed))));
    result.Set("errno", Napi::Number::New(env, probe_errno_.load(std::memory_order_relaxed)));
    return result;
  }

  // The thread's kernel task id (for /proc/self/task/<tid>/stat), 0 before it started.
  Napi::Value GetTid(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), thread_alive_ ? tid_.load(std::memory_order_acquire) : 0);
  }

  Napi::Value GetRunning(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), thread_alive_); }

  Napi::Value GetExitPending(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), exit_pending_);
  }

  // IN exits answered from the read mirror by this object's threads so far (never reset).
  Napi::Value GetPioMirrorHits(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(pio_mirror_hits_.load(std::memory_order_relaxed)));
  }

  // Exits delivered through resumeAndPoll() so far (never reset).
  Napi::Value GetPolledExits(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(polled_exits_.load(std::memory_order_relaxed)));
  }

  // Nanoseconds from the previous exit's completion to the pending exit (see resumeToExitNs at the top).
  Napi::Value GetResumeToExitNs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(resume_to_exit_ns_.load(std::memory_order_relaxed)));
  }

  // Nanoseconds the last exit delivered through onExit took to get there (see deliveryNs at the top).
  Napi::Value GetDeliveryNs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(delivery_ns_));
  }

  Napi::Env env_ = Napi::Env(nullptr);
  int fd_ = -1;
  std::shared_ptr<MappingState> run_state_;
  kvm_run* run_ = nullptr;
  Napi::ObjectReference run_ref_;
  Napi::FunctionReference on_exit_;
  Napi::FunctionReference on_stop_;
  Napi::AsyncContext context_;
  int64_t spin_ns_ = 0;
  bool simulate_ = false;
  uint64_t simulated_exits_ = 0;
  uint8_t simulated_ins_done_ = 0;
  uint8_t simulated_last_in_ = 0;
  bool simulated_in_pending_ = false;
  Napi::ObjectReference mirror_value_;  // options.pioReadMirror: keeps the Mapping alive
  std::shared_ptr<MappingState> mirror_state_;
  const uint32_t* mirror_ = nullptr;
  std::atomic<uint64_t> pio_mirror_hits_{0};

  napi_threadsafe_function tsfn_ = nullptr;
  pthread_t thread_{};
  bool thread_alive_ = false;  // created and not yet joined (JS thread only)
  bool exit_pending_ = false;  // an exit was delivered to JS and not resumed (JS thread only)
  uint64_t generation_ = 0;    // bumped whenever a thread is joined: stale events are dropped
  uint64_t thread_generation_ = 0;

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> probe_requested_{false};
  std::atomic<uint64_t> probe_count_{0};
  std::atomic<uint32_t> probe_mp_state_{0};
  std::atomic<uint64_t> probe_rflags_{0};
  std::atomic<int> probe_errno_{0};
  std::atomic<int> tid_{0};
  std::atomic<bool> abandon_{false};
  std::atomic<bool> resumed_{false};
  std::atomic<int> poll_state_{kPollIdle};
  std::atomic<int64_t> poll_resume_spin_ns_{0};
  std::atomic<uint64_t> polled_exits_{0};
  std::atomic<uint64_t> resumed_at_ns_{0};
  std::atomic<uint64_t> resume_to_exit_ns_{0};
  std::atomic<uint64_t> exited_at_ns_{0};
  uint64_t delivery_ns_ = 0;  // JS thread only
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace

void InitVcpuThread(Napi::Env env, Napi::Object exports) { exports.Set("VcpuThread", VcpuThread::Define(env)); }

}  // namespace hype
