// What every view shares: the error banner, actions from buttons, and what to stop on leaving.
import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";

const errorBox = () => document.getElementById("error");

/** Show an error exactly as the API gave it: its message and its code. */
export function showError(error) {
  const code = error instanceof ApiError ? error.code : "CLIENT";
  const requestId = error instanceof ApiError && error.extensions.requestId ? ` (request ${error.extensions.requestId})` : "";
  replace(errorBox(), h("strong", {}, "Error: "), h("span", { class: "message" }, error.message), " ", h("code", { class: "code" }, code), requestId);
  errorBox().hidden = false;
}

export function clearError() {
  errorBox().hidden = true;
  errorBox().replaceChildren();
}

/** Run an action from a button: disabled meanwhile; any failure is shown. */
export async function act(button, action) {
  clearError();
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

const teardown = [];

/** Views register what to stop (subscriptions, timers, key handlers) when the route changes. */
export function onLeave(fn) { teardown.push(fn); }

export function leave() { for (const fn of teardown.splice(0)) fn(); }

export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

export const statusText = (status) => h("span", { class: `status status-${status}` }, status.toLowerCase());
