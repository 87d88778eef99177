import { ensureDefaultGuest } from '@hype/guest';
import type { DefaultGuest, DefaultGuestFiles } from './ports.js';

/** The default guest from @hype/guest: its cached kernel (the ELF vmlinux) and hype's initrd. */
export const packagedDefaultGuest: DefaultGuest = {
  async ensure(progress, reportCached = false): Promise<DefaultGuestFiles> {
    const { kernel, initrd } = await ensureDefaultGuest({ progress, reportCached });
    return { kernel, initrd };
  },
};
