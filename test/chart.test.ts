import * as fs from 'node:fs';
import * as path from 'node:path';
import { perplexitySpec, type PerplexitySeries } from '../src/core/chart-spec';
import { perplexityChartSvg, writePerplexityChart } from '../src/terminal/chart';
import { tempDir } from './helpers';

/** Tiny metrics, no training: the chart is about drawing, not learning. */
const SERIES: PerplexitySeries[] = [
  {
    name: 'scratch',
    points: [
      { epoch: 1, perplexity: 40 },
      { epoch: 2, perplexity: 20 },
      { epoch: 3, perplexity: 12 },
    ],
  },
  {
    name: 'builtin',
    points: [
      { epoch: 1, perplexity: 30 },
      { epoch: 2, perplexity: 8 },
      { epoch: 3, perplexity: 3 },
    ],
  },
];

/** The line marks' paths, one per series: `[label of its first point, path data, stroke colour]`. */
function linePaths(svg: string): { label: string; d: string; stroke: string }[] {
  const found = svg.matchAll(/<g class="mark-line[^"]*"[^>]*><path aria-label="([^"]*)"[^>]* d="([^"]+)" stroke="([^"]+)"/g);
  return Array.from(found, ([, label, d, stroke]) => ({ label, d, stroke }));
}

/** Well-formedness without an XML library: one root, every tag closed in order. */
function expectWellFormedSvg(svg: string): void {
  expect(svg.startsWith('<svg ')).toBe(true);
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  const open: string[] = [];
  for (const [tag, closing, name, selfClosing] of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    if (selfClosing) continue;
    if (!closing) open.push(name);
    else expect({ tag, opened: open.pop() }).toEqual({ tag, opened: name });
  }
  expect(open).toEqual([]);
}

describe('the perplexity chart', () => {
  it('is a vega-lite line chart: x epoch, y perplexity on a log scale, one colour per model', () => {
    // biome-ignore lint/suspicious/noExplicitAny: the spec read as the JSON vega-lite gets
    const spec = perplexitySpec(SERIES) as any;
    expect(spec.mark.type).toBe('line');
    expect(spec.encoding.x).toMatchObject({ field: 'epoch', title: 'epoch' });
    expect(spec.encoding.y).toMatchObject({ field: 'perplexity', title: 'perplexity (log scale)', scale: { type: 'log' } });
    expect(spec.encoding.color).toMatchObject({ field: 'model', sort: ['scratch', 'builtin'] });
    expect(spec.encoding.strokeDash).toBeUndefined();
    expect(spec.data.values).toHaveLength(6);
  });

  it('renders to well-formed SVG with both curves, labelled axes and a legend', async () => {
    const svg = await perplexityChartSvg(SERIES);
    expectWellFormedSvg(svg);
    const lines = linePaths(svg);
    expect(lines.map((l) => l.label.match(/model: (\w+)/)?.[1])).toEqual(['scratch', 'builtin']);
    for (const line of lines) expect(line.d).toMatch(/^M[\d.,-]+(L[\d.,-]+){2}$/); // three epochs, three points
    expect(lines[0].stroke).not.toBe(lines[1].stroke);
    expect(svg).toMatch(/aria-label="X-axis titled 'epoch'/);
    expect(svg).toMatch(/aria-label="Y-axis titled 'perplexity \(log scale\)' for a log scale/);
    expect(svg).toMatch(/legend titled 'model' .* 2 values: scratch, builtin/);
    expect(svg).toContain('>Perplexity by epoch</text>');
  });

  it('draws held-out perplexity dashed, and leaves out points a log scale cannot place', async () => {
    const series: PerplexitySeries[] = [
      {
        name: 'scratch',
        points: [
          { epoch: 1, perplexity: 9, heldOutPerplexity: 10 },
          { epoch: 2, perplexity: NaN, heldOutPerplexity: 0 },
          { epoch: 3, perplexity: 4, heldOutPerplexity: 6 },
        ],
      },
      {
        name: 'builtin',
        points: [
          { epoch: 1, perplexity: 7, heldOutPerplexity: 8 },
          { epoch: 2, perplexity: Infinity },
          { epoch: 3, perplexity: 2, heldOutPerplexity: 5 },
        ],
      },
    ];
    // biome-ignore lint/suspicious/noExplicitAny: the spec read as the JSON vega-lite gets
    const spec = perplexitySpec(series) as any;
    expect(spec.encoding.strokeDash).toMatchObject({ field: 'set' });
    expect(spec.data.values).toHaveLength(8);
    const svg = await perplexityChartSvg(series);
    expectWellFormedSvg(svg);
    expect(linePaths(svg)).toHaveLength(4);
    expect(svg).toContain('stroke-dasharray');
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it('across cells, colours by cell and dashes by impl (scratch solid, builtin dashed), one line per run', () => {
    const series: PerplexitySeries[] = ['GRU', 'RNN'].flatMap((cell) =>
      ['scratch', 'builtin'].map((impl) => ({ name: `${impl} ${cell}`, cell, impl, points: SERIES[0].points })),
    );
    // biome-ignore lint/suspicious/noExplicitAny: the spec read as the JSON vega-lite gets
    const spec = perplexitySpec(series) as any;
    expect(spec.encoding.color).toMatchObject({ field: 'cell', title: 'cell', sort: ['GRU', 'RNN'] });
    expect(spec.encoding.strokeDash).toMatchObject({
      field: 'line',
      scale: {
        domain: ['scratch', 'builtin'],
        range: [
          [1, 0],
          [6, 4],
        ],
      },
    });
    expect(spec.encoding.detail).toMatchObject({ field: 'model' });
    expect(spec.data.values).toHaveLength(4 * SERIES[0].points.length);
  });

  it('writes the file whole, leaving no temporary file beside it', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'compare.svg');
    await writePerplexityChart(file, SERIES);
    expect(fs.readdirSync(dir)).toEqual(['compare.svg']);
    expectWellFormedSvg(fs.readFileSync(file, 'utf8'));
  });
});
