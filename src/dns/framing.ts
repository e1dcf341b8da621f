/** DNS over TCP: every message is preceded by its length as two bytes (RFC 1035 §4.2.2). */

export function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

/**
 * Reassembles messages from a stream's chunks, which split and join them at will.
 * Holds at most one incomplete message (< 64 KiB), whatever the peer sends.
 */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      out.push(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
    }
    // Copied so that a small remainder does not pin a large chunk in memory.
    this.pending = Buffer.from(buf);
    return out;
  }
}
