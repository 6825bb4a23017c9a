/** A logger that records what discovery and the deletion-cost writer say, for assertions. */
export interface LogLine {
  readonly level: 'warn' | 'info';
  readonly message: string;
  readonly details: Record<string, unknown>;
}

export interface CapturingLogger {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
}

export function captureLogger(): { logger: CapturingLogger; lines: LogLine[]; warnings: () => LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    warnings: () => lines.filter((l) => l.level === 'warn'),
    logger: {
      warn: (details, message) => lines.push({ level: 'warn', message, details: details as Record<string, unknown> }),
      info: (details, message) => lines.push({ level: 'info', message, details: details as Record<string, unknown> }),
    },
  };
}
