// Starts Swagger UI on the docs page. A file of its own, not inline, so the page's CSP can forbid inline script.
"use strict";
const root = document.getElementById("ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.spec,
  domNode: root,
  // Its validator badge would send the document's URL to swagger.io (only the standalone layout shows it today).
  validatorUrl: "none",
});
