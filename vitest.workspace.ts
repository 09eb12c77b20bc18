export default [
  {
    test: {
      name: "domain",
      root: "packages/domain",
      include: ["test/**/*.test.ts"]
    }
  },
  {
    test: {
      name: "server",
      root: "packages/server",
      include: ["test/**/*.test.ts"],
      globalSetup: ["test/global-setup.ts"],
      testTimeout: 60_000,
      hookTimeout: 120_000
    }
  },
  {
    test: {
      name: "cli",
      root: "packages/cli",
      include: ["test/**/*.test.ts"]
    }
  },
  {
    test: {
      name: "bench",
      root: "packages/bench",
      include: ["test/**/*.test.ts"]
    }
  },
  {
    test: {
      name: "wa-simulator",
      root: "packages/wa-simulator",
      include: ["test/**/*.test.ts"],
      testTimeout: 60_000
    }
  }
]
