// The studio: a client of Cook's public GraphQL API. Routes live in the URL's hash:
//   #/                      collections (sign-in first)
//   #/collections/<id>      one collection: preview, start a cook, its cooks and exports
//   #/cooks/<id>            a cook's live progress, with pause, resume and cancel
//   #/cooks/<id>/review     a gallery of the cook's pieces, reviewed with the keyboard
//   #/collections/<id>/tree     the trait tree editor (validated live, saved with its version)
//   #/collections/<id>/rarity   each category's drawn against expected shares, approval rates
//   #/collections/<id>/gallery?<Category>=<Trait>  every cook's pieces, filtered by trait
//   #/webhooks              the owner's webhook endpoints and their deliveries (webhooks.js)
import { ApiError, gql, session } from "./api.js";
import { h, replace } from "./dom.js";
import { clearError, leave, navigate, showError } from "./ui.js";
import { signInView } from "./signin.js";
import { collectionsView, collectionView } from "./collections.js";
import { cookView } from "./cook.js";
import { reviewView } from "./review.js";
import { treeView } from "./tree.js";
import { rarityView } from "./rarity.js";
import { webhooksView } from "./webhooks.js";

const main = document.getElementById("main");
const who = document.getElementById("who");

async function showWho() {
  if (!session.token) { who.replaceChildren(); return; }
  try {
    const { viewer } = await gql("query Viewer { viewer { id isAdmin } }");
    replace(who, h("a", { href: "#/webhooks", id: "webhooks-link" }, "Webhooks"), " · ",
      "Signed in as ", h("strong", { id: "viewer" }, viewer.id), viewer.isAdmin ? " (admin)" : "",
      h("button", { type: "button", class: "secondary", onclick: () => { session.signOut(); navigate("#/"); } }, "Sign out"));
  } catch (error) {
    who.replaceChildren();
    throw error;
  }
}

async function route() {
  leave();
  clearError();
  const [path, search = ""] = (location.hash.replace(/^#/, "") || "/").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = Object.fromEntries(new URLSearchParams(search));
  const view = h("div", {});
  replace(main, view);
  try {
    if (!session.token) {
      who.replaceChildren();
      await signInView(view, () => navigate(location.hash || "#/"));
      return;
    }
    await showWho();
    if (parts.length === 0) await collectionsView(view);
    else if (parts[0] === "collections" && parts[1] && parts[2] === "tree") await treeView(view, parts[1]);
    else if (parts[0] === "collections" && parts[1] && parts[2] === "rarity") await rarityView(view, parts[1]);
    else if (parts[0] === "collections" && parts[1] && parts[2] === "gallery") await reviewView(view, { collectionId: parts[1], traits: params });
    else if (parts[0] === "collections" && parts[1]) await collectionView(view, parts[1]);
    else if (parts[0] === "cooks" && parts[1] && parts[2] === "review") await reviewView(view, { cookId: parts[1], traits: params });
    else if (parts[0] === "cooks" && parts[1]) await cookView(view, parts[1]);
    else if (parts[0] === "webhooks") await webhooksView(view);
    else replace(view, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the collections")));
  } catch (error) {
    showError(error);
    if (error instanceof ApiError && error.code === "UNAUTHENTICATED") {
      replace(view, h("p", {}, "Your token was refused. ", h("button", { type: "button", onclick: () => { session.signOut(); navigate("#/"); } }, "Sign in again")));
    }
  }
  const heading = main.querySelector("h1");
  if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => showError(event.reason instanceof Error ? event.reason : new Error(String(event.reason))));
route();
