import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalCIDR,
  canonicalIP,
  cidrToIPNet,
  compareGoStrings,
  ipNetToCidr,
  maskFromPrefixLen,
  parseIP,
  prefixLenFromMask,
} from '../../src/keyspace/index.js';

void describe('keyspace IP helpers', () => {
  void it('formats IPs like Go net.IP.String()', () => {
    const cases: [string, string][] = [
      ['10.0.0.1', '10.0.0.1'],
      ['::ffff:10.0.0.1', '10.0.0.1'],
      ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
      ['2001:db8:1:1:1:1:0:1', '2001:db8:1:1:1:1:0:1'],
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['::1.2.3.4', '::102:304'],
    ];
    for (const [input, expected] of cases) assert.equal(canonicalIP(input), expected, input);
  });

  void it('rejects what Go rejects', () => {
    for (const bad of [
      '',
      '10.0.0',
      '10.0.0.256',
      '010.0.0.1',
      '1.2.3.4.5',
      'fe80::1%eth0',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      '1:2:3:4:5:6:7:8::',
      '12345::',
      ':1',
      'localhost',
    ]) {
      assert.equal(parseIP(bad), null, bad);
    }
  });

  void it('converts masks', () => {
    assert.equal(maskFromPrefixLen(24, 4), '////AA==');
    assert.equal(maskFromPrefixLen(32, 4), '/////w==');
    assert.equal(maskFromPrefixLen(0, 4), 'AAAAAA==');
    assert.equal(maskFromPrefixLen(64, 6), '//////////8AAAAAAAAAAA==');
    assert.equal(prefixLenFromMask('////AA=='), 24);
    assert.equal(prefixLenFromMask('//////////8AAAAAAAAAAA=='), 64);
    assert.equal(prefixLenFromMask('/wD/AA=='), null);
    assert.equal(prefixLenFromMask('////'), null);
    assert.equal(prefixLenFromMask('***'), null);
    assert.throws(() => maskFromPrefixLen(33, 4), RangeError);
  });

  void it('converts CIDRs to and from Go IPNet JSON', () => {
    assert.deepEqual(cidrToIPNet('10.2.0.5/24'), { IP: '10.2.0.0', Mask: '////AA==' });
    assert.equal(ipNetToCidr('10.2.0.0', '////AA=='), '10.2.0.0/24');
    assert.equal(ipNetToCidr('10.2.0.0', '/////////////////////w=='), '10.2.0.0/32');
    assert.equal(ipNetToCidr('fd00::', '////AA=='), null);
    assert.equal(canonicalCIDR('FD00::5/64'), 'fd00::/64');
    assert.equal(canonicalCIDR('10.0.0.0/33'), null);
    assert.equal(canonicalCIDR('10.0.0.0'), null);
  });

  void it('compares strings in Go byte order', () => {
    assert.ok(compareGoStrings('10', '2') < 0, "compareGoStrings('10', '2') < 0");
    assert.ok(compareGoStrings('a', 'ab') < 0, "compareGoStrings('a', 'ab') < 0");
    // U+FFFD sorts before an astral character in UTF-8, unlike UTF-16 code units.
    assert.ok(
      compareGoStrings('\ufffd', '\u{1f600}') < 0,
      "compareGoStrings('\\ufffd', '\\u{1f600}') < 0",
    );
  });
});
