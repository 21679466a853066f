/* Live updates (portal/live.py): a page's poller asks only while its tab is visible, and asks at once
 * when the tab comes back, so a page left in the background costs nothing and is current again the
 * moment it is looked at. A staff page's poll asks for the page as its address bar now reads (a
 * filter or a page of the table changes it), and waits while someone is typing in a field of the part
 * it would replace. */
(function () {
  "use strict";
  var TYPING = "input, select, textarea";

  function busy(poller) {
    var region = poller.matches("[data-live-page]") && document.getElementById("live-region");
    var focused = document.activeElement;
    return Boolean(region && focused && focused.matches(TYPING) && region.contains(focused));
  }

  document.body.addEventListener("htmx:beforeRequest", function (event) {
    var poller = event.detail.elt;
    if (poller.matches("[data-live]") && (document.hidden || busy(poller))) event.preventDefault();
  });
  document.body.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt.matches("[data-live-page]")) event.detail.path = location.pathname + location.search;
  });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    document.querySelectorAll("[data-live]").forEach(function (poller) {
      htmx.trigger(poller, "live");
    });
  });
})();
