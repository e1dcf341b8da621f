/**
 * Column alignment like Go's tabwriter as the reference CLI uses it (padding 3):
 * every column but the last is padded to its widest cell.
 */
export function tabwrite(rows: readonly (readonly string[])[], padding = 3, minWidth = 5): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? minWidth, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + padding)))
        .join('')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}
