// Every layout constant of @hype/virtio against Linux's uapi headers (virtio_mmio.h, virtio_ring.h,
// virtio_config.h, virtio_ids.h, virtio_console.h): compiled with the host's C compiler when there is
// one, and always against the numbers copied from those headers.
import { describe, expect, it } from 'vitest';
import { cProgram } from '../../../scripts/test/c-values.js';
import { ConsoleConfig, ConsoleFeature } from '../src/console.js';
import { DeviceId, Feature, Status, TRANSPORT_FEATURE_FIRST, TRANSPORT_FEATURE_LAST } from '../src/features.js';
import { MMIO_MAGIC_VALUE, MMIO_VERSION, MmioInterrupt, MmioReg } from '../src/mmio-registers.js';
import { AVAIL_F_NO_INTERRUPT, Avail, Desc, DescFlag, RingAlign, USED_F_NO_NOTIFY, Used } from '../src/ring-layout.js';

/** name -> [C expression, our value, value copied from the header] */
const table: Record<string, [string, number, number]> = {
  magic: ['0x74726976', MMIO_MAGIC_VALUE, 0x74726976],
  version: ['2', MMIO_VERSION, 2],
  regMagic: ['VIRTIO_MMIO_MAGIC_VALUE', MmioReg.MAGIC_VALUE, 0x000],
  regVersion: ['VIRTIO_MMIO_VERSION', MmioReg.VERSION, 0x004],
  regDeviceId: ['VIRTIO_MMIO_DEVICE_ID', MmioReg.DEVICE_ID, 0x008],
  regVendorId: ['VIRTIO_MMIO_VENDOR_ID', MmioReg.VENDOR_ID, 0x00c],
  regDeviceFeatures: ['VIRTIO_MMIO_DEVICE_FEATURES', MmioReg.DEVICE_FEATURES, 0x010],
  regDeviceFeaturesSel: ['VIRTIO_MMIO_DEVICE_FEATURES_SEL', MmioReg.DEVICE_FEATURES_SEL, 0x014],
  regDriverFeatures: ['VIRTIO_MMIO_DRIVER_FEATURES', MmioReg.DRIVER_FEATURES, 0x020],
  regDriverFeaturesSel: ['VIRTIO_MMIO_DRIVER_FEATURES_SEL', MmioReg.DRIVER_FEATURES_SEL, 0x024],
  regGuestPageSize: ['VIRTIO_MMIO_GUEST_PAGE_SIZE', MmioReg.GUEST_PAGE_SIZE, 0x028],
  regQueueSel: ['VIRTIO_MMIO_QUEUE_SEL', MmioReg.QUEUE_SEL, 0x030],
  regQueueNumMax: ['VIRTIO_MMIO_QUEUE_NUM_MAX', MmioReg.QUEUE_NUM_MAX, 0x034],
  regQueueNum: ['VIRTIO_MMIO_QUEUE_NUM', MmioReg.QUEUE_NUM, 0x038],
  regQueueAlign: ['VIRTIO_MMIO_QUEUE_ALIGN', MmioReg.QUEUE_ALIGN, 0x03c],
  regQueuePfn: ['VIRTIO_MMIO_QUEUE_PFN', MmioReg.QUEUE_PFN, 0x040],
  regQueueReady: ['VIRTIO_MMIO_QUEUE_READY', MmioReg.QUEUE_READY, 0x044],
  regQueueNotify: ['VIRTIO_MMIO_QUEUE_NOTIFY', MmioReg.QUEUE_NOTIFY, 0x050],
  regInterruptStatus: ['VIRTIO_MMIO_INTERRUPT_STATUS', MmioReg.INTERRUPT_STATUS, 0x060],
  regInterruptAck: ['VIRTIO_MMIO_INTERRUPT_ACK', MmioReg.INTERRUPT_ACK, 0x064],
  regStatus: ['VIRTIO_MMIO_STATUS', MmioReg.STATUS, 0x070],
  regQueueDescLow: ['VIRTIO_MMIO_QUEUE_DESC_LOW', MmioReg.QUEUE_DESC_LOW, 0x080],
  regQueueDescHigh: ['VIRTIO_MMIO_QUEUE_DESC_HIGH', MmioReg.QUEUE_DESC_HIGH, 0x084],
  regQueueAvailLow: ['VIRTIO_MMIO_QUEUE_AVAIL_LOW', MmioReg.QUEUE_DRIVER_LOW, 0x090],
  regQueueAvailHigh: ['VIRTIO_MMIO_QUEUE_AVAIL_HIGH', MmioReg.QUEUE_DRIVER_HIGH, 0x094],
  regQueueUsedLow: ['VIRTIO_MMIO_QUEUE_USED_LOW', MmioReg.QUEUE_DEVICE_LOW, 0x0a0],
  regQueueUsedHigh: ['VIRTIO_MMIO_QUEUE_USED_HIGH', MmioReg.QUEUE_DEVICE_HIGH, 0x0a4],
  regShmSel: ['VIRTIO_MMIO_SHM_SEL', MmioReg.SHM_SEL, 0x0ac],
  regShmLenLow: ['VIRTIO_MMIO_SHM_LEN_LOW', MmioReg.SHM_LEN_LOW, 0x0b0],
  regShmLenHigh: ['VIRTIO_MMIO_SHM_LEN_HIGH', MmioReg.SHM_LEN_HIGH, 0x0b4],
  regShmBaseLow: ['VIRTIO_MMIO_SHM_BASE_LOW', MmioReg.SHM_BASE_LOW, 0x0b8],
  regShmBaseHigh: ['VIRTIO_MMIO_SHM_BASE_HIGH', MmioReg.SHM_BASE_HIGH, 0x0bc],
  regConfigGeneration: ['VIRTIO_MMIO_CONFIG_GENERATION', MmioReg.CONFIG_GENERATION, 0x0fc],
  regConfig: ['VIRTIO_MMIO_CONFIG', MmioReg.CONFIG, 0x100],
  intVring: ['VIRTIO_MMIO_INT_VRING', MmioInterrupt.VRING, 1],
  intConfig: ['VIRTIO_MMIO_INT_CONFIG', MmioInterrupt.CONFIG, 2],

  statusAck: ['VIRTIO_CONFIG_S_ACKNOWLEDGE', Status.ACKNOWLEDGE, 1],
  statusDriver: ['VIRTIO_CONFIG_S_DRIVER', Status.DRIVER, 2],
  statusDriverOk: ['VIRTIO_CONFIG_S_DRIVER_OK', Status.DRIVER_OK, 4],
  statusFeaturesOk: ['VIRTIO_CONFIG_S_FEATURES_OK', Status.FEATURES_OK, 8],
  statusNeedsReset: ['VIRTIO_CONFIG_S_NEEDS_RESET', Status.DEVICE_NEEDS_RESET, 0x40],
  statusFailed: ['VIRTIO_CONFIG_S_FAILED', Status.FAILED, 0x80],
  transportFirst: ['VIRTIO_TRANSPORT_F_START', TRANSPORT_FEATURE_FIRST, 28],
  fVersion1: ['VIRTIO_F_VERSION_1', Feature.VERSION_1, 32],
  fAccessPlatform: ['VIRTIO_F_ACCESS_PLATFORM', Feature.ACCESS_PLATFORM, 33],
  fRingPacked: ['VIRTIO_F_RING_PACKED', Feature.RING_PACKED, 34],
  fInOrder: ['VIRTIO_F_IN_ORDER', Feature.IN_ORDER, 35],
  fOrderPlatform: ['VIRTIO_F_ORDER_PLATFORM', Feature.ORDER_PLATFORM, 36],
  fSrIov: ['VIRTIO_F_SR_IOV', Feature.SR_IOV, 37],
  fRingReset: ['VIRTIO_F_RING_RESET', Feature.RING_RESET, 40],
  fIndirect: ['VIRTIO_RING_F_INDIRECT_DESC', Feature.RING_INDIRECT_DESC, 28],
  fEventIdx: ['VIRTIO_RING_F_EVENT_IDX', Feature.RING_EVENT_IDX, 29],

  idNet: ['VIRTIO_ID_NET', DeviceId.NET, 1],
  idBlock: ['VIRTIO_ID_BLOCK', DeviceId.BLOCK, 2],
  idConsole: ['VIRTIO_ID_CONSOLE', DeviceId.CONSOLE, 3],
  idRng: ['VIRTIO_ID_RNG', DeviceId.RNG, 4],

  descSize: ['sizeof(struct vring_desc)', Desc.SIZE, 16],
  descAddr: ['offsetof(struct vring_desc, addr)', Desc.ADDR, 0],
  descLen: ['offsetof(struct vring_desc, len)', Desc.LEN, 8],
  descFlags: ['offsetof(struct vring_desc, flags)', Desc.FLAGS, 12],
  descNext: ['offsetof(struct vring_desc, next)', Desc.NEXT, 14],
  descFNext: ['VRING_DESC_F_NEXT', DescFlag.NEXT, 1],
  descFWrite: ['VRING_DESC_F_WRITE', DescFlag.WRITE, 2],
  descFIndirect: ['VRING_DESC_F_INDIRECT', DescFlag.INDIRECT, 4],
  availFlags: ['offsetof(struct vring_avail, flags)', Avail.FLAGS, 0],
  availIdx: ['offsetof(struct vring_avail, idx)', Avail.IDX, 2],
  availRing: ['offsetof(struct vring_avail, ring)', Avail.RING, 4],
  availEntry: ['sizeof(((struct vring_avail *)0)->ring[0])', Avail.ENTRY_SIZE, 2],
  availNoInterrupt: ['VRING_AVAIL_F_NO_INTERRUPT', AVAIL_F_NO_INTERRUPT, 1],
  usedFlags: ['offsetof(struct vring_used, flags)', Used.FLAGS, 0],
  usedIdx: ['offsetof(struct vring_used, idx)', Used.IDX, 2],
  usedRing: ['offsetof(struct vring_used, ring)', Used.RING, 4],
  usedElem: ['sizeof(struct vring_used_elem)', Used.ELEM_SIZE, 8],
  usedElemId: ['offsetof(struct vring_used_elem, id)', Used.ELEM_ID, 0],
  usedElemLen: ['offsetof(struct vring_used_elem, len)', Used.ELEM_LEN, 4],
  usedNoNotify: ['VRING_USED_F_NO_NOTIFY', USED_F_NO_NOTIFY, 1],
  alignDesc: ['VRING_DESC_ALIGN_SIZE', RingAlign.DESC, 16],
  alignAvail: ['VRING_AVAIL_ALIGN_SIZE', RingAlign.AVAIL, 2],
  alignUsed: ['VRING_USED_ALIGN_SIZE', RingAlign.USED, 4],
  // used_event / avail_event positions for a 256-entry ring, via the header's own macros.
  usedEvent256: ['(char *)&vring_used_event(&vr256) - (char *)vr256.avail', Avail.usedEventOffset(256), 516],
  availEvent256: ['(char *)&vring_avail_event(&vr256) - (char *)vr256.used', Used.availEventOffset(256), 2052],

  consoleCols: ['offsetof(struct virtio_console_config, cols)', ConsoleConfig.COLS, 0],
  consoleRows: ['offsetof(struct virtio_console_config, rows)', ConsoleConfig.ROWS, 2],
  consoleMaxNrPorts: ['offsetof(struct virtio_console_config, max_nr_ports)', ConsoleConfig.MAX_NR_PORTS, 4],
  consoleEmergWr: ['offsetof(struct virtio_console_config, emerg_wr)', ConsoleConfig.EMERG_WR, 8],
  consoleConfigSize: ['sizeof(struct virtio_console_config)', ConsoleConfig.SIZE, 12],
  consoleFSize: ['VIRTIO_CONSOLE_F_SIZE', ConsoleFeature.SIZE, 0],
  consoleFMultiport: ['VIRTIO_CONSOLE_F_MULTIPORT', ConsoleFeature.MULTIPORT, 1],
  consoleFEmergWrite: ['VIRTIO_CONSOLE_F_EMERG_WRITE', ConsoleFeature.EMERG_WRITE, 2],
};

const HEADERS = ['virtio_mmio.h', 'virtio_ring.h', 'virtio_config.h', 'virtio_ids.h', 'virtio_console.h'];

// setup: the 256-entry ring (laid out by vring_init) that the used_event/avail_event expressions read.
const uapiH = cProgram({
  check: 'the compiled layout check (linux/virtio_*.h uapi headers)',
  includes: ['stdlib.h', ...HEADERS.map((h) => `linux/${h}`)],
  setup: ['struct vring vr256; void *mem = calloc(1, vring_size(256, 4096));', 'vring_init(&vr256, 256, mem, 4096);'],
});

describe('virtio layout constants vs Linux uapi headers', () => {
  it('match the numbers copied from the headers', () => {
    for (const [name, [, ours, copied]] of Object.entries(table)) expect([name, ours]).toEqual([name, copied]);
  });

  it.skipIf(!uapiH.canCompile)('match the compiled headers', () => {
    const compiled = uapiH.values(Object.fromEntries(Object.entries(table).map(([name, [expr]]) => [name, expr])));
    for (const [name, [, ours]] of Object.entries(table)) expect([name, ours]).toEqual([name, compiled[name]]);
  });

  it('transport feature range is 28..41 (virtio 1.2 §6; VIRTIO_TRANSPORT_F_END is 41 in 6.1 headers, 42 later)', () => {
    expect([TRANSPORT_FEATURE_FIRST, TRANSPORT_FEATURE_LAST]).toEqual([28, 41]);
  });

  it('ring sizes follow the layout (desc 16n, avail 6+2n, used 6+8n)', () => {
    expect(Avail.size(256)).toBe(6 + 2 * 256);
    expect(Used.size(256)).toBe(6 + 8 * 256);
  });
});
