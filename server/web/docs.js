// Swagger UI on the server's own contract; the bundle is a classic script loaded before this module runs.
window.SwaggerUIBundle({
  url: '/openapi.yaml',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
});
