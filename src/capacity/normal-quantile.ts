/**
 * The standard normal distribution's quantile function, which turns a service time's mean and
 * coefficient of variation into the points of a lognormal distribution (service-time.ts).
 *
 * Peter J. Acklam's rational approximation (a central rational function and two tail ones, relative
 * error below 1.2e-9): closed form and a dozen lines, where a series or a root finder would be slower
 * and no more useful at the precision a latency estimate needs.
 */
const A = [-39.69683028665376, 220.9460984245205, -275.928510446969, 138.357751867269, -30.66479806614716, 2.506628277459239];
const B = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
const C = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
const D = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
const LOW = 0.02425;

/** Horner's rule: coefficients from the highest power down. */
function poly(coefficients: readonly number[], x: number): number {
  let y = 0;
  for (const k of coefficients) y = y * x + k;
  return y;
}

/** z such that P(Z <= z) = p for a standard normal Z; p in (0, 1). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile needs 0 < p < 1, got ${p}`);
  if (p < LOW || p > 1 - LOW) {
    const q = Math.sqrt(-2 * Math.log(p < LOW ? p : 1 - p));
    const z = poly(C, q) / (poly(D, q) * q + 1);
    return p < LOW ? z : -z;
  }
  const q = p - 0.5;
  const r = q * q;
  return (poly(A, r) * q) / (poly(B, r) * r + 1);
}
