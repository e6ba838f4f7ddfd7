/** Where commands write human-readable lines; injected so tests can capture them. */
export interface Logger {
  info(line: string): void;
}

export const consoleLogger: Logger = {
  info: (line) => console.log(line),
};
