/**
 * The published study's measurements, for `rasa-gateway plan` to print beside its own predictions:
 * Rasa 3.4.4 on Kubernetes, one pod per 2-core node, n requests started evenly over one second, time
 * from send to the full reply, range over the burst (first to last answer), in seconds.
 *
 * Source: ../shared/study.md, "What it found" (the write-up this project answers; see README "Why").
 * Copied as published, not derived: rows are pods, columns requests per second.
 */
export const STUDY_PODS = [1, 2, 4, 10] as const;
export const STUDY_RATES = [1, 10, 50, 100] as const;

/** [fastest, slowest] answer in seconds, by pods then by rate. */
export const STUDY_MEASURED: Readonly<Record<number, Readonly<Record<number, readonly [number, number]>>>> = {
  1: { 1: [0.5, 0.7], 10: [2.5, 3.4], 50: [12.5, 14.2], 100: [27, 29] },
  2: { 1: [0.5, 0.7], 10: [0.5, 1.4], 50: [3.9, 6], 100: [8, 11.2] },
  4: { 1: [0.5, 0.7], 10: [0.5, 0.8], 50: [1.1, 3.5], 100: [2.3, 5.8] },
  10: { 1: [0.5, 0.7], 10: [0.5, 0.7], 50: [0.5, 3], 100: [0.5, 3] },
};

/** The study's pod profile (study.md, "Emulating it"): 2 slots, about 0.5 s per request. */
export const STUDY_PROFILE = { slots: 2, serviceMs: 500 } as const;
