// G.711 mu-law to PCM16, for the "as a caller hears it" reply audio.
const TABLE = new Int16Array(256);
for (let i = 0; i < 256; i++) {
  const u = ~i & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  TABLE[i] = u & 0x80 ? 0x84 - t : t - 0x84;
}

export function muLawToPcm16(bytes) {
  const out = new Int16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = TABLE[bytes[i]];
  return out;
}
