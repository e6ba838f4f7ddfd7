import { parseResultLine } from '../src/cli/commands/bench';
import { formatTable } from '../src/ui/table';
import { median } from '../src/core/metrics';

describe('bench helpers', () => {
  it('parses the reference script\'s RESULT line, ignoring the lines before it', () => {
    const out = 'epoch 40, perplexity 1.02\n - 分开 ...\nRESULT impl=scratch vocab=1027 epochs=160 median_epoch_s=0.552 total_s=92.2 final_perplexity=3.6195\n';
    expect(parseResultLine(out)).toEqual({
      impl: 'scratch',
      vocab: 1027,
      epochs: 160,
      medianEpochSeconds: 0.552,
      totalSeconds: 92.2,
      finalPerplexity: 3.6195,
    });
  });

  it('returns undefined when there is no usable RESULT line', () => {
    expect(parseResultLine('Traceback (most recent call last):\n')).toBeUndefined();
    expect(parseResultLine('RESULT impl=scratch median_epoch_s=oops')).toBeUndefined();
  });

  it('takes the upper middle of an even count, like the reference script', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(3);
    expect(median([])).toBeNaN();
  });

  it('aligns text left and numbers right', () => {
    expect(formatTable([['scratch', '1.500'], ['builtin', '12.250']], ['impl', 's/epoch'])).toEqual([
      'impl     s/epoch',
      '-------  -------',
      'scratch    1.500',
      'builtin   12.250',
    ]);
  });
});
