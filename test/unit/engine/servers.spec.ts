import { DEFAULT_PORT, resolveServers } from '../../../lib/engine/servers.js';
import { invalidArgument } from '../../support/errors.js';

const addresses = (specs: Parameters<typeof resolveServers>[0]) => resolveServers(specs).map((s) => s.address);

describe('resolveServers', () => {
  it('defaults to 127.0.0.1 on the Gearman port 4730', () => {
    expect(DEFAULT_PORT).toBe(4730);
    expect(resolveServers(undefined)).toEqual([
      { host: '127.0.0.1', port: 4730, address: '127.0.0.1:4730', tls: undefined },
    ]);
  });

  it('reads "host", "host:port" and one spec or a list', () => {
    expect(resolveServers('gearman.internal')).toEqual([
      { host: 'gearman.internal', port: 4730, address: 'gearman.internal:4730', tls: undefined },
    ]);
    expect(resolveServers('10.0.0.5:4731')).toEqual([
      { host: '10.0.0.5', port: 4731, address: '10.0.0.5:4731', tls: undefined },
    ]);
    expect(addresses(['a', 'b:1', 'c:65535'])).toEqual(['a:4730', 'b:1', 'c:65535']);
  });

  it('reads bracketed IPv6, with or without a port, and brackets IPv6 hosts in the address', () => {
    expect(resolveServers('[::1]:4731')).toEqual([{ host: '::1', port: 4731, address: '[::1]:4731', tls: undefined }]);
    expect(resolveServers('[fe80::1]')[0]).toMatchObject({ host: 'fe80::1', port: 4730, address: '[fe80::1]:4730' });
    expect(resolveServers({ host: '::1', port: 7003 })[0].address).toBe('[::1]:7003');
  });

  it('takes objects, with the port defaulted, and does not change them', () => {
    const spec = { host: 'h', port: 4800 };
    expect(resolveServers([spec, { host: 'other' }]).map((s) => s.address)).toEqual(['h:4800', 'other:4730']);
    expect(spec).toEqual({ host: 'h', port: 4800 });
  });

  it('keeps the order given', () => {
    expect(addresses(['z:1', 'a:1', 'm:1'])).toEqual(['z:1', 'a:1', 'm:1']);
  });

  it('applies the shared tls to every server that does not set its own', () => {
    const ca = { ca: 'PEM' };
    const [plain, own, off] = resolveServers(['a', { host: 'b', tls: ca }, { host: 'c', tls: false }], true);
    expect(plain.tls).toEqual({});
    expect(own.tls).toBe(ca);
    expect(off.tls).toBeUndefined();
    expect(resolveServers('a', ca)[0].tls).toBe(ca);
    expect(resolveServers('a', false)[0].tls).toBeUndefined();
    expect(resolveServers({ host: 'a', tls: true })[0].tls).toEqual({});
  });

  it('rejects an empty list, a missing host and ports outside 1..65535', () => {
    expect(invalidArgument(() => resolveServers([])).message).toContain('No Gearman server given');
    for (const spec of ['', ':4730', 'h:0', 'h:65536', 'h:', 'h:abc', 'h:1.5', 'h:-1', '[::1]:0']) {
      expect(invalidArgument(() => resolveServers(spec)).message).toContain(
        `Invalid Gearman server ${JSON.stringify(spec)}`,
      );
    }
    for (const spec of [
      { host: '' },
      { host: 'h', port: 0 },
      { host: 'h', port: 70_000 },
      { host: 'h', port: 1.5 },
      { host: 'h', port: NaN },
    ]) {
      invalidArgument(() => resolveServers(spec));
    }
  });

  it('rejects a server listed twice, also when one spelling leaves the port out', () => {
    expect(invalidArgument(() => resolveServers(['a:1', 'a:1'])).message).toBe('Gearman server a:1 is listed twice');
    invalidArgument(() => resolveServers(['localhost', 'localhost:4730']));
    invalidArgument(() => resolveServers(['[::1]:4730', { host: '::1' }]));
    expect(addresses(['localhost', '127.0.0.1'])).toEqual(['localhost:4730', '127.0.0.1:4730']); // not resolved: names differ
  });

  describe('what it accepts today (the port is read with Number())', () => {
    it('takes whitespace, hex and exponent notation as a port', () => {
      expect(addresses(['h: 80', 'i:0x50', 'j:1e3'])).toEqual(['h:80', 'i:80', 'j:1000']);
    });

    it('splits an unbracketed IPv6 address at its last colon', () => {
      expect(resolveServers('::1')[0]).toMatchObject({ host: ':', port: 1, address: '[:]:1' });
      expect(resolveServers('fe80::1:4730')[0]).toMatchObject({
        host: 'fe80::1',
        port: 4730,
        address: '[fe80::1]:4730',
      });
    });

    it('passes the host through as written (no trimming, no lower-casing)', () => {
      expect(addresses([' Gearman.Local ', 'gearman.local'])).toEqual([' Gearman.Local :4730', 'gearman.local:4730']);
    });
  });
});
