/**
 * Erlang's C formula: the probability that an arrival to c parallel servers with Poisson arrivals and
 * exponential service has to wait (M/M/c), for an offered load of `a` erlangs (arrival rate x mean
 * service time). It is the heart of the capacity model (queue-model.ts), which corrects it for
 * general service times.
 *
 * Computed through Erlang B's recursion, B(k) = a B(k-1) / (k + a B(k-1)), and C = c B / (c - a (1 - B)):
 * no factorials or powers, so it stays exact for thousands of servers where the textbook sum overflows.
 */

/** P(wait) for `servers` servers and `erlangs` offered load; 1 when the servers cannot keep up (a >= c). */
export function erlangC(servers: number, erlangs: number): number {
  if (erlangs <= 0) return 0;
  if (erlangs >= servers) return 1;
  let b = 1;
  for (let k = 1; k <= servers; k++) b = (erlangs * b) / (k + erlangs * b);
  return (servers * b) / (servers - erlangs * (1 - b));
}
