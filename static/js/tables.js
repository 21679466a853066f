/* Keep keyboard focus on the sort or page link that was used when HTMX swaps its table. */
(function () {
  "use strict";
  var focusedId = null;
  document.addEventListener("htmx:beforeRequest", function () {
    var active = document.activeElement;
    focusedId = active && active.id && active.closest(".table-card") ? active.id : null;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!focusedId) return;
    var again = document.getElementById(focusedId);
    if (again) again.focus();
    focusedId = null;
  });
})();
