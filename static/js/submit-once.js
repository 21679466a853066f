/* Every button that changes money or hours is pressed once: while a form that posts is being sent,
   its submit buttons are disabled (the console's one-time keys make a second submit harmless; this
   stops it being sent at all). Loaded on every page, console and student site alike.
   - HTMX requests (hx-post, hx-put, hx-delete): from htmx:beforeRequest, when htmx has already read
     the form's values, until htmx:afterRequest, so that a form shown again with an error can be sent
     again.
   - Plain forms: just after the browser has read the values (a submitter disabled before that would
     drop its name and value from them); the page then navigates. A page restored from the
     back-forward cache gets its buttons back. */
(function () {
  "use strict";
  var SUBMIT_BUTTONS = "button:not([type]), button[type=submit], input[type=submit]";
  var disabledHere = [];

  function buttonsOf(element) {
    if (element.matches(SUBMIT_BUTTONS)) return [element];
    return Array.prototype.slice.call(element.querySelectorAll(SUBMIT_BUTTONS));
  }

  function disable(buttons) {
    buttons.forEach(function (button) {
      if (button.disabled) return; // disabled for a reason of its own: leave it to that reason
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      disabledHere.push(button);
    });
  }

  function enable(buttons) {
    buttons.forEach(function (button) {
      var index = disabledHere.indexOf(button);
      if (index === -1) return;
      disabledHere.splice(index, 1);
      button.disabled = false;
      button.removeAttribute("aria-busy");
    });
  }

  function changesSomething(verb) {
    return verb && verb.toLowerCase() !== "get";
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (changesSomething(event.detail.requestConfig && event.detail.requestConfig.verb)) {
      disable(buttonsOf(event.detail.elt));
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    enable(buttonsOf(event.detail.elt));
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || form.method !== "post") return; // HTMX or a script sends it
    setTimeout(function () {
      disable(buttonsOf(form));
    }, 0);
  });

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) enable(disabledHere.slice());
  });
})();
