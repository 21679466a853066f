/* Loads the offline Stripe stand-in's Stripe.js (localstripe, development and tests only).
 *
 * That script declares a top-level `class Element`, which, loaded with a plain <script> tag,
 * shadows the DOM's Element for every script on the page and stops htmx from processing anything.
 * So it is fetched and run inside a function scope instead, with `document.currentScript` answered
 * the way the script expects (it derives the stand-in's API address from its own URL). Real
 * Stripe.js is loaded with an ordinary <script> tag and never comes through here.
 */
(function () {
  "use strict";
  var url = document.currentScript.dataset.stripeJs;
  var documentSeenByStandIn = new Proxy(document, {
    get: function (target, name) {
      if (name === "currentScript") return { src: url };
      var value = Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  window.stripeReady = fetch(url)
    .then(function (response) {
      return response.text();
    })
    .then(function (source) {
      // eslint-disable-next-line no-new-func
      new Function("document", source + "\n;window.Stripe = Stripe;")(documentSeenByStandIn);
    });
})();
