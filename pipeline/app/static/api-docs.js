// Starts Swagger UI on /api/docs (kept out of the page: the CSP allows no inline script).
(function () {
  "use strict";
  const el = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: el.dataset.url, dom_id: "#swagger-ui", deepLinking: true });
})();
