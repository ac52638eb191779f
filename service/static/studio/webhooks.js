// #/webhooks: the owner's outbound webhook endpoints (list, create, edit, rotate, test, delete)
// and each one's recent deliveries, with redelivery. Everything through the public GraphQL API;
// a secret is shown once, as the API returns it from createWebhookEndpoint or rotateWebhookSecret.
import { gql } from "./api.js";
import { field, h, replace, table } from "./dom.js";
import { act } from "./ui.js";

const EVENTS = ["cook.completed", "cook.failed", "cook.cancelled", "export.completed", "export.failed"];
const ENDPOINT = "id url events description enabled disabledReason failureStreak previousSecretExpiresAt";
const DELIVERY = "id event status attempts error createdAt deliveredAt attemptLog { number statusCode durationMs error }";

export async function webhooksView(view) {
  const secretBox = h("div", { id: "webhook-secret", "aria-live": "polite" });
  const list = h("div", { id: "webhook-endpoints" });
  const refresh = () => act(null, () => showEndpoints(list, secretBox, refresh));
  replace(view,
    h("p", {}, h("a", { href: "#/" }, "← Collections")),
    h("h1", {}, "Webhooks"),
    h("p", { class: "hint" }, "Cook POSTs a signed message (Standard Webhooks) to each endpoint when a cook or an export ends."),
    secretBox,
    h("section", { class: "card", "aria-labelledby": "endpoints-heading" },
      h("h2", { id: "endpoints-heading" }, "Your endpoints"), list),
    createForm(secretBox, refresh));
  await showEndpoints(list, secretBox, refresh);
}

function showSecret(box, secret) {
  replace(box, h("section", { class: "card" },
    h("h2", {}, "Signing secret"),
    h("p", {}, "Shown only now: keep it where your receiver verifies signatures."),
    h("code", { class: "secret" }, secret)));
}

async function showEndpoints(list, secretBox, refresh) {
  const { webhookEndpoints } = await gql(`query Endpoints { webhookEndpoints(first: 100) { edges { node { ${ENDPOINT} } } } }`);
  const endpoints = webhookEndpoints.edges.map((e) => e.node);
  if (!endpoints.length) { replace(list, h("p", { id: "no-endpoints" }, "No endpoints yet: add one below.")); return; }
  replace(list, endpoints.map((endpoint) => endpointCard(endpoint, secretBox, refresh)));
}

function endpointCard(endpoint, secretBox, refresh) {
  const deliveries = h("div", {});
  const run = (label, action) => {
    const button = h("button", { type: "button", class: "secondary" }, label);
    button.addEventListener("click", () => act(button, action));
    return button;
  };
  const rotate = run("Rotate secret", async () => {
    const { rotateWebhookSecret } = await gql(`mutation Rotate($id: ID!) { rotateWebhookSecret(id: $id) { secret } }`, { id: endpoint.id });
    showSecret(secretBox, rotateWebhookSecret.secret);
    await refresh();
  });
  const test = run("Send a test event", async () => {
    await gql(`mutation Test($id: ID!) { sendTestWebhook(endpointId: $id) { id } }`, { id: endpoint.id });
    await showDeliveries(deliveries, endpoint.id);
  });
  const toggle = run(endpoint.enabled ? "Disable" : "Enable", async () => {
    await gql(`mutation Toggle($id: ID!, $on: Boolean) { updateWebhookEndpoint(id: $id, enabled: $on) { id } }`, { id: endpoint.id, on: !endpoint.enabled });
    await refresh();
  });
  const remove = run("Delete", async () => {
    await gql(`mutation Delete($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }`, { id: endpoint.id });
    await refresh();
  });
  const load = run("Recent deliveries", () => showDeliveries(deliveries, endpoint.id));
  return h("article", { class: "endpoint", "data-id": endpoint.id },
    h("h3", {}, endpoint.url),
    h("p", {}, endpoint.events.join(", "), endpoint.description ? ` — ${endpoint.description}` : ""),
    h("p", {}, endpoint.enabled ? "Enabled" : `Disabled: ${endpoint.disabledReason || ""}`,
      endpoint.failureStreak ? ` (${endpoint.failureStreak} failed deliveries in a row)` : "",
      endpoint.previousSecretExpiresAt ? ` — the previous secret signs until ${endpoint.previousSecretExpiresAt}` : ""),
    h("div", { class: "actions" }, load, test, rotate, toggle, remove),
    deliveries);
}

async function showDeliveries(box, endpointId) {
  const { webhookDeliveries } = await gql(`query Deliveries($id: ID!) { webhookDeliveries(endpointId: $id, first: 20) { edges { node { ${DELIVERY} } } } }`, { id: endpointId });
  const rows = webhookDeliveries.edges.map(({ node }) => {
    const last = node.attemptLog[node.attemptLog.length - 1];
    const redeliver = h("button", { type: "button", class: "secondary", disabled: node.status === "PENDING" }, "Redeliver");
    redeliver.addEventListener("click", () => act(redeliver, async () => {
      await gql(`mutation Redeliver($id: ID!) { redeliver(deliveryId: $id) { id } }`, { id: node.id });
      await showDeliveries(box, endpointId);
    }));
    return [node.event, node.status.toLowerCase(), String(node.attemptLog.length),
      last ? `${last.statusCode ?? "—"} in ${last.durationMs} ms${last.error ? ` (${last.error})` : ""}` : "—",
      node.createdAt, redeliver];
  });
  replace(box, rows.length
    ? table("Recent deliveries, newest first", ["Event", "Status", "Attempts", "Last answer", "Recorded", ""], rows)
    : h("p", {}, "No deliveries yet."));
}

function createForm(secretBox, refresh) {
  const url = h("input", { name: "url", type: "url", required: true, maxlength: 2048, placeholder: "the receiver's URL" });
  const description = h("input", { name: "description", maxlength: 200 });
  const boxes = EVENTS.map((event) => h("input", { type: "checkbox", name: "events", value: event, checked: event.endsWith("completed") }));
  const submit = h("button", { type: "submit" }, "Add endpoint");
  return h("form", {
    id: "create-endpoint",
    class: "card",
    onsubmit: (event) => {
      event.preventDefault();
      act(submit, async () => {
        const events = boxes.filter((b) => b.checked).map((b) => b.value);
        const { createWebhookEndpoint } = await gql(`mutation CreateEndpoint($url: String!, $events: [String!]!, $d: String) {
          createWebhookEndpoint(url: $url, events: $events, description: $d) { id secret } }`,
        { url: url.value, events, d: description.value || null });
        showSecret(secretBox, createWebhookEndpoint.secret);
        url.value = "";
        await refresh();
      });
    },
  },
  h("h2", {}, "Add an endpoint"),
  h("div", { class: "row" }, field("URL", url, "https in production; private and loopback addresses are refused."), field("Description", description)),
  h("fieldset", {}, h("legend", {}, "Events"),
    boxes.map((box, i) => { box.id = `event-${i}`; return h("label", { for: box.id, class: "check" }, box, ` ${EVENTS[i]}`); })),
  h("div", { class: "actions" }, submit));
}
