/**
 * Bytes and text without Node's Buffer: TextEncoder, TextDecoder and ArrayBuffer exist in Node and
 * in every browser, so the model files read and write the same way on both.
 */

/** Text as UTF-8 bytes. */
export function utf8Bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** UTF-8 bytes as text; with `fatal`, bytes that are not UTF-8 throw instead of becoming U+FFFD. */
export function utf8Text(bytes: Uint8Array, fatal = false): string {
  return new TextDecoder('utf-8', { fatal }).decode(bytes);
}

/**
 * The bytes of a view as an ArrayBuffer of their own. tf.io wants an ArrayBuffer, and a view's
 * `.buffer` may be larger than the view (a slice of a pooled buffer, a file read into a bigger one).
 */
export function arrayBufferOf(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
