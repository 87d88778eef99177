export {
  type GuestMemory,
  GUEST_ADDRESS_LIMIT,
  isGuestRange,
  guestView,
  copyFromGuest,
  copyToGuest,
  ArrayGuestMemory,
} from './guest-memory.js';
export { type RamRange, GuestMemoryMap } from './memory-map.js';
