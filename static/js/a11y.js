/* After each HTMX swap, for people on a keyboard or a screen reader (WCAG 2.4.3, 3.2.2, 4.1.3):
 * - Focus goes to the new part's [data-focus] element when it has one (a template's choice: the
 *   result of what was pressed). Otherwise it moves only when the swap took away the focused element
 *   (a button that replaced itself), to the part's heading or else the part itself, so that Tab
 *   goes on from there and not from the top of the page.
 * - What the new part has to say ([data-announce], or else its role=status text) is said once, in
 *   base.html's one polite live region (#announcer): a status that arrives inside new content is not
 *   reliably read out by itself. Texts the part already showed before the swap (a balance banner
 *   refreshed after a payment) are not said again.
 * Loaded after tables.js and payments.js, which put focus where they want it first. */
(function () {
  "use strict";
  var SAYS = "[data-announce], [role=status]";
  var HEADING = "h1, h2, h3, h4, h5, h6";
  var region = document.getElementById("announcer");
  var earlier = new WeakMap(); // swap target: {texts, hadFocus} from just before the swap
  var pending = [];
  var timer = null;
  var lastFocused = null; // what had focus before a busy button, disabled meanwhile, dropped it

  function textOf(element) {
    var text = element.getAttribute("data-announce") || element.textContent;
    return text.replace(/\s+/g, " ").trim();
  }

  function textsIn(root) {
    var found = root.matches(SAYS) ? [root] : Array.prototype.slice.call(root.querySelectorAll(SAYS));
    return found
      .filter(function (element) {
        // A status inside another one is said with it; the live region itself, never.
        var outer = element.parentElement && element.parentElement.closest(SAYS);
        return element !== region && !(outer && root.contains(outer) && outer !== element);
      })
      .map(textOf)
      .filter(Boolean);
  }

  function say(text) {
    if (!region || pending.indexOf(text) !== -1) return;
    pending.push(text);
    clearTimeout(timer);
    timer = setTimeout(function () {
      var words = pending.join(" ");
      pending = [];
      region.textContent = ""; // emptied first, so that the same words twice are said twice
      setTimeout(function () {
        region.textContent = words;
      }, 50);
    }, 100);
  }

  function focusOn(element) {
    if (element.tabIndex < 0 && !element.hasAttribute("tabindex")) element.setAttribute("tabindex", "-1");
    element.focus();
  }

  document.addEventListener("focusin", function (event) {
    lastFocused = event.target;
  });
  document.addEventListener("pointerdown", function () {
    lastFocused = null; // a click elsewhere moves on from it (a click on a control focuses that one)
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    var active = document.activeElement;
    if (!active || active === document.body) active = lastFocused;
    earlier.set(target, {
      texts: textsIn(target),
      hadFocus: Boolean(active && active !== document.body && target.contains(active)),
    });
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var part = event.target;
    if (!(part instanceof Element) || !part.isConnected || part === document.body) return;
    var before = earlier.get(event.detail.target) || { texts: [], hadFocus: false };
    textsIn(part).forEach(function (text) {
      if (before.texts.indexOf(text) === -1) say(text);
    });
    var wanted = part.matches("[data-focus]") ? part : part.querySelector("[data-focus]");
    var active = document.activeElement;
    var lost = before.hadFocus && (!active || active === document.body || !active.isConnected);
    // While a bank check (3-D Secure) is on screen, payments.js owns the focus: moving it would
    // interrupt the check's hand-off (the subscription flow's check never opened so).
    var checking = document.querySelector("[data-payment-action]");
    if (wanted) focusOn(wanted);
    else if (lost && !checking) focusOn(part.querySelector(HEADING) || part);
  });
})();
