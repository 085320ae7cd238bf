/** 95% Wilson score interval for a proportion; well-behaved at 0, 1 and small n (benchmarks are small). */
export function wilsonInterval(successes: number, total: number, z = 1.959964): [number, number] {
  if (total === 0) return [0, 1];
  const p = successes / total;
  const z2 = z * z;
  const denominator = 1 + z2 / total;
  const centre = (p + z2 / (2 * total)) / denominator;
  const half = (z * Math.sqrt((p * (1 - p)) / total + z2 / (4 * total * total))) / denominator;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}
