// Starts Swagger UI on the server's own OpenAPI document. It lives in its own file, not in
// index.html, so that the page needs no inline script.
window.addEventListener("load", function () {
  // Exposed for scripts and tests: window.ui.preauthorizeApiKey("CoderSessionToken", token).
  window.ui = SwaggerUIBundle({
    url: "/api/v2/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    filter: true,
    displayRequestDuration: true,
    // The default sends the document's URL to validator.swagger.io; nothing leaves this server.
    validatorUrl: null,
  });
});
