import type { Config } from 'jest';

const config: Config = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  // Training tests are CPU-bound; two workers match the 2-core machines CI runs on.
  maxWorkers: 2,
  testTimeout: 120_000,
};

export default config;
