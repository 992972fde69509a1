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

  describe('strict parsing: what is not an accepted form is refused, never guessed at', () => {
    const message = (spec: unknown) =>
      invalidArgument(() => resolveServers(spec as Parameters<typeof resolveServers>[0])).message;

    it('refuses an unbracketed IPv6 address and says to bracket it (it was host ":" port 1)', () => {
      expect(message('::1')).toContain('write an IPv6 address in brackets: "[::1]" or "[::1]:4730"');
      expect(message('fe80::1:4730')).toContain('in brackets');
      expect(message('a:b:c')).toContain('too many colons');
    });

    it('takes only decimal ports without sign, spaces or leading zeros (Number() took hex, exponents, spaces)', () => {
      for (const [spec, port] of [
        ['h:0x10', '0x10'],
        ['h: 4730', ' 4730'],
        ['h:1e3', '1e3'],
        ['h:+80', '+80'],
        ['h:04730', '04730'],
        ['h:4730 ', undefined],
        ['h:99999999', '99999999'],
      ] as const) {
        const m = message(spec);
        expect(m).toContain(`Invalid Gearman server ${JSON.stringify(spec)}`);
        if (port) expect(m).toContain(`the port ${JSON.stringify(port)} is not a decimal number from 1 to 65535`);
      }
    });

    it('refuses surrounding whitespace, a trailing newline and URLs', () => {
      expect(message('gearman.local\n')).toContain('remove the surrounding spaces or line breaks');
      expect(message(' Gearman.Local ')).toContain('remove the surrounding spaces');
      expect(message('gearman://host:4730')).toContain('without a URL scheme');
      expect(message('tcp://host')).toContain('without a URL scheme');
    });

    it('takes host names and IPv4 of name characters only', () => {
      for (const spec of [
        'h st',
        'h/x',
        'h@x',
        '-h',
        'h..x',
        'h:4730/x',
        '[h]',
        '[::1',
        '[::1]x',
        '[::1]:',
        '[]:4730',
      ]) {
        expect(message(spec)).toContain(`Invalid Gearman server ${JSON.stringify(spec)}`);
      }
      expect(addresses(['Gearman.Local', 'gearman_1', 'a-b.example.com.', '10.1.2.3:1'])).toEqual([
        'Gearman.Local:4730', // kept as written: no lower-casing
        'gearman_1:4730',
        'a-b.example.com.:4730',
        '10.1.2.3:1',
      ]);
    });

    it('checks the object form the same way', () => {
      expect(message({ host: 'h', port: '4730' })).toContain('port must be a whole number from 1 to 65535');
      expect(message({ host: '[::1]' })).toContain('without brackets');
      expect(message({ host: 'h x' })).toContain('is not a host name or IPv4 address');
      expect(message({ host: 4730 })).toContain('host must be a string');
      expect(message(null)).toContain('a server is a string or an object, got null');
      expect(message(4730)).toContain('got number');
      expect(resolveServers({ host: 'fe80::1%eth0' })[0].address).toBe('[fe80::1%eth0]:4730');
    });

    it('shows the accepted forms in every message, and no TLS options', () => {
      for (const spec of ['::1', 'h:0x10', { host: 'h', port: 0, tls: { key: 'SECRET' } }]) {
        const m = message(spec);
        expect(m).toContain('accepted forms: "host", "host:port", "[IPv6]", "[IPv6]:port" or { host, port }');
        expect(m).toContain('default 4730');
        expect(m).not.toContain('SECRET');
      }
    });
  });
});
