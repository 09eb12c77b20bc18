/** @type {import("dependency-cruiser").IConfiguration} */
export default {
  forbidden: [
    {
      name: "no-folder-cycle",
      comment:
        "A capability folder of the server (and any folder below it) must not depend on a folder that depends back on it, even through different files.",
      severity: "error",
      scope: "folder",
      from: { path: "^packages/server/src/[^/]+" },
      to: { circular: true }
    },
    {
      name: "no-reaching-into-subfolder",
      comment:
        "Other folders use a capability through the files directly in it; its subfolders (db/migrations) stay private. Folder rules only see the innermost folder a dependency lands in, so this keeps no-folder-cycle complete.",
      severity: "error",
      from: { path: "^packages/server/src/([^/]+)/" },
      to: { path: "^packages/server/src/[^/]+/[^/]+/", pathNot: "^packages/server/src/$1/" }
    },
    {
      name: "no-import-of-assembly",
      comment:
        "main.ts and gateway.ts assemble every capability and are imported by no capability; a capability importing them would hide a cycle from the folder rule.",
      severity: "error",
      from: { path: "^packages/server/src/[^/]+/" },
      to: { path: "^packages/server/src/[^/]+$" }
    },
    {
      name: "no-module-cycle",
      comment: "No module of any package's src may import itself back through other modules.",
      severity: "error",
      from: { path: "^packages/[^/]+/src/" },
      to: { circular: true }
    }
  ],
  options: {
    // Only the packages' own sources; workspace imports (@whatisup/domain) resolve to packages/*/src through their symlinks.
    includeOnly: "^packages/[^/]+/src/",
    // Read the TypeScript sources before compilation, so `import type` counts as a dependency.
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "types", "node", "default"]
    }
  }
}
