import { defineConfig } from "vitest/config"
import projects from "./vitest.workspace.ts"

export default defineConfig({
  test: {
    projects,
    // two test files at a time (vitest takes one on two cores): most of a file's time is spent waiting
    // on processes, timers and PostgreSQL; 538 s for all against 852 s one at a time here (2026-12-01).
    // Each file has its own database; the machine's PostgreSQL (100 connections) has room for two
    // files' gateways
    maxWorkers: 2
  }
})
