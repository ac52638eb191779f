import { gql, session } from "./api.js";
import { field, h, replace } from "./dom.js";
import { act } from "./ui.js";

export async function signInView(view, done) {
  const token = h("textarea", { rows: 4, name: "token", autocomplete: "off", spellcheck: "false", required: true });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      act(submit, async () => {
        const value = token.value.trim().replace(/^Bearer\s+/i, "");
        session.signIn(value);
        try {
          await gql("query Viewer { viewer { id } }");
        } catch (error) {
          session.signOut();
          throw error;
        }
        done();
      });
    },
  },
  field("Token", token, "A JWT for your account. In development: the command the `cook serve` banner prints. It stays in this tab only (sessionStorage) and is sent as a Bearer token."),
  h("div", { class: "actions" }, submit));
  replace(view, h("h1", {}, "Sign in"), h("section", { class: "card" }, form));
}
