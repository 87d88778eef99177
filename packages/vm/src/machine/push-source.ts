import type { ConsoleSource } from '@hype/virtio';

/** Host input for the virtio console: what the front end writes, delivered while the device is not paused. */
export class PushSource implements ConsoleSource {
  private listener: ((bytes: Uint8Array) => void) | undefined;
  private paused = false;
  private readonly pending: Uint8Array[] = [];

  onData(listener: (bytes: Uint8Array) => void): void {
    this.listener = listener;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    while (!this.paused && this.pending.length > 0) this.listener?.(this.pending.shift()!);
  }
  write(bytes: Uint8Array): void {
    if (this.paused || !this.listener) this.pending.push(bytes.slice());
    else this.listener(bytes);
  }
}
