import { describe, expect, it } from 'vitest';
import { parseArgs } from '../src/args.js';
import { configFromJson } from '../src/config-file.js';
import { parseMac, parseNetSpec, parsePublish, resolveNics } from '../src/net-options.js';
import { UsageError } from '../src/usage-error.js';

const usage = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error('no UsageError');
};

describe('--net', () => {
  it('user, tap=NAME, none, with ,mac=', () => {
    expect(parseNetSpec('user', '--net')).toEqual({ kind: 'user' });
    expect(parseNetSpec('none', '--net')).toEqual({ kind: 'none' });
    expect(parseNetSpec('tap=tap0', '--net')).toEqual({ kind: 'tap', name: 'tap0' });
    expect(parseNetSpec('tap=hype-1,mac=52:54:00:AB:cd:01', '--net')).toEqual({ kind: 'tap', name: 'hype-1', mac: '52:54:00:ab:cd:01' });
    expect(parseNetSpec('user,mac=02:00:00:00:00:01', '--net')).toEqual({ kind: 'user', mac: '02:00:00:00:00:01' });
  });

  it('one line naming the flag for each mistake', () => {
    expect(usage(() => parseNetSpec('slirp', '--net'))).toMatch(/^--net slirp: say "user" .*"tap=NAME".*"none"$/);
    expect(usage(() => parseNetSpec('tap=', '--net'))).toBe("--net tap=: the TAP interface name must be 1-15 letters, digits, '-', '_' or '.'");
    expect(usage(() => parseNetSpec('tap=a-name-that-is-too-long', '--net'))).toContain('1-15');
    expect(usage(() => parseNetSpec('tap=a/b', '--net'))).toContain('1-15');
    expect(usage(() => parseNetSpec('user,model=e1000', '--net'))).toBe('--net user,model=e1000: unknown option "model=e1000"; the only one is mac=MAC');
    expect(usage(() => parseNetSpec('none,mac=52:54:00:00:00:01', '--net'))).toContain('"none" has no MAC');
    expect(usage(() => parseNetSpec(3, 'vm.json: net'))).toBe('vm.json: net 3: say "user", "tap=NAME" or "none"');
  });
});

describe('--mac', () => {
  it('six hex pairs, unicast, not zero', () => {
    expect(parseMac('52:54:00:12:34:56', '--mac')).toBe('52:54:00:12:34:56');
    expect(usage(() => parseMac('52-54-00-12-34-56', '--mac'))).toBe('--mac 52-54-00-12-34-56: a MAC address is six hex pairs, e.g. 52:54:00:12:34:56');
    expect(usage(() => parseMac('01:00:5e:00:00:01', '--mac'))).toContain('multicast');
    expect(usage(() => parseMac('00:00:00:00:00:00', '--mac'))).toContain('all zero');
  });
});

describe('--publish', () => {
  it('HOST:GUEST, ADDR:HOST:GUEST, PORT, /udp', () => {
    expect(parsePublish('8080:80', '--publish')).toEqual({ protocol: 'tcp', hostPort: 8080, guestPort: 80 });
    expect(parsePublish('127.0.0.1:2222:22', '--publish')).toEqual({ protocol: 'tcp', hostPort: 2222, guestPort: 22, hostAddress: '127.0.0.1' });
    expect(parsePublish('5353:53/udp', '--publish')).toEqual({ protocol: 'udp', hostPort: 5353, guestPort: 53 });
    expect(parsePublish('9000', '--publish')).toEqual({ protocol: 'tcp', hostPort: 9000, guestPort: 9000 });
  });

  it('one line naming the flag for each mistake', () => {
    expect(usage(() => parsePublish('8080:0', '--publish'))).toBe('--publish 8080:0: the guest port must be a number from 1 to 65535');
    expect(usage(() => parsePublish('70000:80', '--publish'))).toContain('the host port must be');
    expect(usage(() => parsePublish('8080:80/sctp', '--publish'))).toContain('tcp or udp');
    expect(usage(() => parsePublish('host:8080:80', '--publish'))).toContain('host is not an IPv4 address');
    expect(usage(() => parsePublish('1:2:3:4', '--publish'))).toContain('[HOST_ADDRESS:]HOST_PORT:GUEST_PORT');
  });
});

describe('resolveNics', () => {
  const fwd = { protocol: 'tcp' as const, hostPort: 8080, guestPort: 80 };

  it('NICs in order; --mac on the first; --publish through the first user network', () => {
    expect(resolveNics([{ kind: 'tap', name: 't0' }, { kind: 'user' }], '52:54:00:00:00:09', [fwd])).toEqual([
      { kind: 'tap', name: 't0', mac: '52:54:00:00:00:09' },
      { kind: 'user', publish: [fwd] },
    ]);
    expect(resolveNics(undefined, undefined, undefined)).toEqual([]);
    expect(resolveNics([{ kind: 'none' }], undefined, undefined)).toEqual([]);
  });

  it('refuses what cannot work', () => {
    expect(usage(() => resolveNics([{ kind: 'none' }, { kind: 'user' }], undefined, undefined))).toBe('--net: "none" cannot be combined with other networks');
    expect(usage(() => resolveNics(undefined, undefined, [fwd]))).toBe('--publish: forwards ports through user-mode networking; add --net user');
    expect(usage(() => resolveNics([{ kind: 'tap', name: 't' }], undefined, [fwd]))).toContain('add --net user');
    expect(usage(() => resolveNics(undefined, '52:54:00:00:00:01', undefined))).toContain('--mac: there is no network interface');
    expect(usage(() => resolveNics([{ kind: 'user', mac: '52:54:00:00:00:01' }], '52:54:00:00:00:02', undefined))).toContain('already has mac=');
    expect(usage(() => resolveNics([{ kind: 'tap', name: 't' }, { kind: 'tap', name: 't' }], undefined, undefined))).toContain('tap=t given twice');
    expect(
      usage(() => resolveNics([{ kind: 'user', mac: '52:54:00:00:00:01' }, { kind: 'tap', name: 't', mac: '52:54:00:00:00:01' }], undefined, undefined)),
    ).toContain('two interfaces with MAC 52:54:00:00:00:01');
    expect(usage(() => resolveNics([{ kind: 'user' }], undefined, [fwd, fwd]))).toContain('tcp port 8080 is published twice');
    expect(usage(() => resolveNics([{ kind: 'user' }], undefined, [fwd, { ...fwd, hostAddress: '127.0.0.1' }]))).toContain('published twice');
    const twoAddresses = [{ ...fwd, hostAddress: '127.0.0.1' }, { ...fwd, hostAddress: '10.0.0.5', guestPort: 81 }];
    expect(resolveNics([{ kind: 'user' }], undefined, twoAddresses)).toEqual([{ kind: 'user', publish: twoAddresses }]);
    expect(resolveNics([{ kind: 'user' }], undefined, [fwd, { ...fwd, protocol: 'udp' as const }])[0]).toMatchObject({ kind: 'user' });
    expect(usage(() => resolveNics(Array.from({ length: 9 }, () => ({ kind: 'user' as const })), undefined, undefined))).toContain('at most 8');
  });
});

describe('flags and config file', () => {
  it('hype run --net user --net tap=t0 --mac M --publish 8080:80 --publish 53/udp', () => {
    const parsed = parseArgs(['run', '--net', 'user', '--net', 'tap=t0', '--mac', '52:54:00:00:00:07', '--publish', '8080:80', '--publish', '53/udp']);
    if (parsed instanceof UsageError || parsed.command !== 'run') throw new Error(String(parsed));
    expect(parsed.flags.options.nets).toEqual([{ kind: 'user' }, { kind: 'tap', name: 't0' }]);
    expect(parsed.flags.options.mac).toBe('52:54:00:00:00:07');
    expect(parsed.flags.options.publish).toEqual([fwdOf(8080, 80), { protocol: 'udp', hostPort: 53, guestPort: 53 }]);
    expect(parsed.flags.origins).toMatchObject({ nets: '--net', mac: '--mac', publish: '--publish' });
  });

  it('a bad --net is a usage error naming it', () => {
    const parsed = parseArgs(['run', '--net', 'bridge']);
    expect(parsed).toBeInstanceOf(UsageError);
    expect((parsed as UsageError).message).toMatch(/^--net bridge: /);
  });

  it('"net" as a string or a list, "mac", "publish" in vm.json', () => {
    const { options, origins } = configFromJson({ net: ['user', 'tap=t1,mac=52:54:00:00:00:01'], publish: '8080:80' }, 'vm.json', '/x');
    expect(options.nets).toEqual([{ kind: 'user' }, { kind: 'tap', name: 't1', mac: '52:54:00:00:00:01' }]);
    expect(options.publish).toEqual([fwdOf(8080, 80)]);
    expect(origins.publish).toBe('vm.json: publish');
    expect(configFromJson({ net: 'user', mac: '52:54:00:00:00:02' }, 'vm.json', '/x').options).toMatchObject({ nets: [{ kind: 'user' }], mac: '52:54:00:00:00:02' });
    expect(usage(() => configFromJson({ net: ['user', 'wifi'] }, 'vm.json', '/x'))).toMatch(/^vm.json: net\[1\] "wifi": /);
    expect(usage(() => configFromJson({ network: 'user' }, 'vm.json', '/x'))).toContain('did you mean "net"');
  });
});

function fwdOf(hostPort: number, guestPort: number) {
  return { protocol: 'tcp', hostPort, guestPort };
}
