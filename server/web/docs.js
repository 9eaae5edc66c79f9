// Swagger UI on the server's own contract; the bundle is a classic script loaded before this module runs.
const ui = window.SwaggerUIBundle({
  url: '/openapi.yaml',
  dom_id: '#swagger-ui',
  deepLinking: true,
  validatorUrl: null,
  // "Try it out" talks to the server that serves this page first.
  onComplete: () => {
    const spec = ui.specSelectors.specJson().toJS();
    spec.servers = [{ url: location.origin, description: 'this server' }, ...(spec.servers ?? []).filter((s) => s.url !== location.origin)];
    ui.specActions.updateJsonSpec(spec);
  },
});
