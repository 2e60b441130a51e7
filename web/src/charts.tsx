// Small SVG charts for the progress page: horizontal bars with their values written out
// (the numbers matter more than the picture, and screen readers get them as a table).

export interface Bar {
  label: string;
  value: number;
  color?: string;
  text?: string;
}

export function Bars({ title, bars, max, unit = '' }: { title: string; bars: Bar[]; max?: number; unit?: string }) {
  const top = max ?? Math.max(1, ...bars.map((b) => b.value));
  const row = 26;
  const labelW = 170;
  const width = 520;
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <svg width={width} height={bars.length * row + 4} role="img" aria-label={title}>
        {bars.map((b, i) => {
          const w = Math.max(0, ((width - labelW - 80) * Math.max(0, b.value)) / top);
          return (
            <g key={b.label} transform={`translate(0, ${i * row + 2})`}>
              <text x={labelW - 6} y={row / 2 + 4} text-anchor="end" class="chart-label">
                {b.label.length > 24 ? b.label.slice(0, 23) + '…' : b.label}
              </text>
              <rect x={labelW} y={3} width={w} height={row - 8} fill={b.color ?? '#5b9bd5'} rx={2} />
              <text x={labelW + w + 6} y={row / 2 + 4} class="chart-value">
                {b.text ?? `${b.value}${unit}`}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
