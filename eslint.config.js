// ESLint for the explorer page's JavaScript: `npm run lint:js` (or `npx eslint src/denselab/templates/explorer/`).
// The modules are classic browser scripts joined into one <script> by denselab.explore.render_page,
// so they share one global, Explorer, which state.js declares.
const js = require("@eslint/js");
const globals = require("globals");

module.exports = [
  {
    files: ["src/denselab/templates/explorer/**/*.js"],
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: { ...globals.browser, Explorer: "readonly" },
    },
    rules: {
      ...js.configs.recommended.rules,
      "no-undef": "error",
      "no-unused-vars": "error",
      "no-redeclare": ["error", { builtinGlobals: false }], // state.js declares the Explorer global
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "commonjs", globals: globals.node },
  },
];
