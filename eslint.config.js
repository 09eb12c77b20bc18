import js from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  { ignores: ["**/node_modules/**", ".data/**", ".tsbuild/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-explicit-any": "off",
      "require-yield": "off"
    }
  },
  {
    // the console's modules run in the browser
    files: ["packages/server/console/**/*.js"],
    languageOptions: {
      globals: Object.fromEntries(
        [
          "AbortController",
          "FormData",
          "TextDecoderStream",
          "URL",
          "URLSearchParams",
          "addEventListener",
          "clearTimeout",
          "document",
          "fetch",
          "location",
          "navigator",
          "removeEventListener",
          "sessionStorage",
          "setTimeout",
          "window"
        ].map((name) => [name, "readonly"])
      )
    }
  }
)
