/* Loads the offline Stripe stand-in's Stripe.js (localstripe, development and tests only).
 *
 * That script declares a top-level `class Element`, which, loaded as a classic <script>, shadows
 * the DOM's Element for every script on the page and stops htmx from processing anything. Loaded
 * as a module, its declarations stay its own, with no eval (which the Content Security Policy
 * refuses). A module lacks two things the script relies on, so they are given to it: the global
 * `Stripe` it assigns to exists beforehand (a module is strict code, where assigning an undeclared
 * name throws), and `document.currentScript`, null inside a module, answers with the script's URL
 * (the stand-in derives its API address from it) until the module has run.
 * Real Stripe.js is loaded with an ordinary <script> tag and never comes through here.
 */
(function () {
  "use strict";
  var url = document.currentScript.dataset.stripeJs;
  var runningClassicScript = Object.getOwnPropertyDescriptor(Document.prototype, "currentScript").get;
  window.Stripe = undefined;
  Object.defineProperty(document, "currentScript", {
    configurable: true,
    get: function () {
      return runningClassicScript.call(document) || { src: url };
    },
  });
  window.stripeReady = new Promise(function (resolve, reject) {
    var script = document.createElement("script");
    script.type = "module";
    script.src = url;
    script.addEventListener("load", resolve); // a module's load event comes after it has run
    script.addEventListener("error", reject);
    document.head.append(script);
  }).finally(function () {
    delete document.currentScript;
  });
})();
