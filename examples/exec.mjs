// Boot hype's default guest, run a command in it, print its output and exit status (README: "Run commands").
import { ensureDefaultGuest } from '@hype/guest';
import { DEFAULT_AGENT_PORT } from '@hype/guest-agent';
import { VsockDevice } from '@hype/virtio-vsock';
import { createVm } from '@hype/vm';

const { kernel, initrd } = await ensureDefaultGuest(); // built once (minutes), then cached
const vsock = new VsockDevice();
const agent = () => vsock.connect(DEFAULT_AGENT_PORT);
const vm = await createVm({ kernel, initrd, memMiB: 256, cpus: 1, console: 'hvc', devices: [vsock], agent }, { consoleOutput: () => {} });
const running = vm.run();
await vm.ready();
const { stdout, exitCode } = await vm.exec(['sh', '-c', 'uname -sr; exit 3']);
console.log(`${new TextDecoder().decode(stdout).trim()} (exit ${exitCode})`);
vm.stop();
await running;
