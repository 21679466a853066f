/* The console's action dialog: a form fetched by HTMX into #dialog-body opens as a modal dialog;
   "Cancel", Escape, or an answer that triggers "dialog:close" shut it. Buttons with data-confirm ask
   first (the submit of dispute evidence, which Stripe accepts once). */
(function () {
  "use strict";
  var dialog = document.getElementById("action-dialog");
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id === "dialog-body" && !dialog.open) {
      dialog.showModal();
      var first = dialog.querySelector("input:not([type=hidden]), select, textarea, button[type=submit]");
      if (first) first.focus();
    }
  });
  document.addEventListener("dialog:close", function () {
    if (dialog.open) dialog.close();
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-dialog-close]")) {
      event.preventDefault();
      if (dialog.open) dialog.close();
      else history.back();
    }
    var confirming = event.target.closest("[data-confirm]");
    if (confirming && !window.confirm(confirming.getAttribute("data-confirm"))) event.preventDefault();
  });
})();
