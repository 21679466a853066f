/* Card forms (Stripe.js Card Element + SetupIntent) and the 3-D Secure hand-off after a pay click.
 * Card data goes from the Card Element straight to Stripe; this script only ever sees Stripe ids.
 * Its texts come translated from the card form's data-msg-* attributes (templates/portal/_card_form.html):
 * the Content Security Policy refuses inline scripts, and the English ones here are only a fallback. */
(function () {
  "use strict";

  var FALLBACK_MESSAGES = {
    msgFailed: "Something went wrong. Please reload the page and try again.",
    msgNotLoaded: "The card form could not load. Please reload the page.",
    msgSaving: "Saving your card…",
    msgNotSaved: "Your card could not be saved.",
    msgSaved: "{card} saved.",
  };
  var authenticationsStarted = new Set();

  function message(form, name) {
    return form.dataset[name] || FALLBACK_MESSAGES[name];
  }

  function csrfToken(form) {
    var field = form.querySelector("[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function stripeClient(key) {
    // Stripe's own texts (the card field, its errors) in the page's language: "pt" is European Portuguese.
    var locale = (document.documentElement.lang || "en").split("-")[0];
    return typeof window.Stripe === "function" && key ? window.Stripe(key, { locale: locale }) : null;
  }

  function postForm(url, token, values, failed) {
    var body = new URLSearchParams(values || {});
    return fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": token, "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
      credentials: "same-origin",
    }).then(function (response) {
      return response.json().then(
        function (payload) {
          if (!response.ok) throw new Error(payload.error || failed);
          return payload;
        },
        function () {
          throw new Error(failed); // an error page, not our JSON
        }
      );
    });
  }

  function mountCardForm(form) {
    if (form.dataset.mounted) return;
    var errors = form.querySelector("[data-card-errors]");
    var status = form.querySelector("[data-card-status]");
    var button = form.querySelector("button[type=submit]");
    var stripe = stripeClient(form.dataset.stripeKey);
    if (!stripe) {
      errors.textContent = message(form, "msgNotLoaded");
      button.disabled = true;
      return;
    }
    form.dataset.mounted = "1";
    var card = stripe.elements().create("card");
    card.mount(form.querySelector("[data-card-element]"));

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      errors.textContent = "";
      status.textContent = message(form, "msgSaving");
      button.disabled = true;
      var token = csrfToken(form);
      var failed = message(form, "msgFailed");
      postForm(form.dataset.setupUrl, token, {}, failed)
        .then(function (setup) {
          return stripe.confirmCardSetup(setup.client_secret, { payment_method: { card: card } });
        })
        .then(function (result) {
          if (result.error) throw new Error(result.error.message || message(form, "msgNotSaved"));
          return postForm(form.dataset.saveUrl, token, { setup_intent: result.setupIntent.id }, failed);
        })
        .then(function (saved) {
          status.textContent = message(form, "msgSaved").replace("{card}", saved.card);
          htmx.trigger(document.body, "cardsChanged");
        })
        .catch(function (error) {
          status.textContent = "";
          errors.textContent = error.message;
        })
        .finally(function () {
          button.disabled = false;
        });
    });
  }

  function completeAuthentication(box) {
    // Each swap renders a new box for the same payment: start its check once only.
    if (authenticationsStarted.has(box.dataset.clientSecret)) return;
    authenticationsStarted.add(box.dataset.clientSecret);
    var stripe = stripeClient(box.dataset.stripeKey);
    if (!stripe) return; // the "I have completed the check" button still settles it
    // Real Stripe answers an off-session charge that needs 3-D Secure with the intent back in
    // requires_payment_method, so the card is passed again; the stand-in ignores it.
    stripe
      .confirmCardPayment(box.dataset.clientSecret, { payment_method: box.dataset.paymentMethod })
      .finally(function () {
        htmx.ajax("POST", box.dataset.refreshUrl, { target: "#payment-result", swap: "innerHTML" });
      });
  }

  function whenStripeReady(callback) {
    // With the offline stand-in, Stripe.js arrives asynchronously (see stripe-stand-in.js).
    (window.stripeReady || Promise.resolve()).then(callback, callback);
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    // The outcome of a pay click appears at the top of the page: take keyboard focus there too.
    if (event.detail.target.id === "payment-result") event.detail.target.focus({ preventScroll: true });
  });

  htmx.onLoad(function (root) {
    whenStripeReady(function () {
      setUp(root);
    });
  });

  function setUp(root) {
    var scope = root.querySelectorAll ? root : document;
    if (root.matches && root.matches("[data-card-form]")) mountCardForm(root);
    if (root.matches && root.matches("[data-payment-action]")) completeAuthentication(root);
    scope.querySelectorAll("[data-card-form]").forEach(mountCardForm);
    scope.querySelectorAll("[data-payment-action]").forEach(completeAuthentication);
  }
})();
