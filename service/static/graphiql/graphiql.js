// GraphiQL for development, offline: every file is served by Cook. The schema comes from the
// SDL Cook serves in development (introspection is admin-only), so any token can explore it.
// The token the studio signed in with (this tab's sessionStorage) fills the Headers tab.
(async () => {
  const root = document.getElementById("graphiql");
  const { GraphiQL, React, ReactDOM } = window;
  let schema;
  try {
    const response = await fetch("/graphql/schema.graphql");
    if (!response.ok) throw new Error(`the schema could not be loaded: HTTP ${response.status}`);
    schema = GraphiQL.GraphQL.buildSchema(await response.text());
  } catch (error) {
    root.textContent = String(error.message || error);
    return;
  }
  const token = sessionStorage.getItem("cook.token");
  const headers = JSON.stringify({ Authorization: `Bearer ${token || "<paste a token from `cook token --sub alice`>"}` }, null, 2);
  const fetcher = GraphiQL.createFetcher({ url: "/graphql" });
  const defaultQuery = "# Run with Ctrl-Enter; the schema came from /graphql/schema.graphql\nquery Me {\n  viewer { id roles }\n}\n";
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher,
      schema,
      defaultHeaders: headers,
      defaultQuery,
      shouldPersistHeaders: false,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: "headers",
    }),
  );
})();
