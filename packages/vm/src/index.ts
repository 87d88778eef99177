export * from "./config.js";
export * from "./log.js";
export * from "./bus.js";
export * from "./devices/uart8250.js";
export * from "./devices/i8042.js";
export * from "./devices/debug-port.js";
