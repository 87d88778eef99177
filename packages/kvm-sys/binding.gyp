{
  "targets": [
    {
      "target_name": "kvm_sys",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/args.cc",
        "native/syscalls.cc",
        "native/mapping.cc",
        "native/fd_watcher.cc",
        "native/tun.cc",
        "native/vcpu_thread.cc",
        "native/pio_loop.cc",
        "native/layout.cc",
        "native/kvm_abi.c"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["-lpthread"]
    }
  ]
}
