import { progressFor } from '../src/progress';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, columns: 80, writes, write: (t: string) => writes.push(t) > 0 };
}

describe('progress bar', () => {
  it('draws on a terminal: epoch, batch, perplexity and ETA on one rewritten line', () => {
    const stream = fakeStream(true);
    const bar = progressFor(stream, {});
    bar.update(1, 10, 3, 8, 123.456);
    expect(stream.writes).toHaveLength(1);
    expect(stream.writes[0]).toMatch(/^\r\[#*\.*\] epoch 1\/10 batch 3\/8  perplexity 123.46  ETA /);
    bar.clear();
    expect(stream.writes.at(-1)).toBe('\r\x1b[K');
  });

  it.each([
    ['piped output', false, {}],
    ['CI, even on a terminal', true, { CI: 'true' }],
  ])('draws nothing for %s', (_what, isTTY, env) => {
    const stream = fakeStream(isTTY);
    const bar = progressFor(stream, env);
    bar.update(1, 10, 3, 8, 1);
    bar.clear();
    expect(stream.writes).toEqual([]);
  });
});
