// The console's one script (beside htmx): keyboard shortcuts for the review queue.
// j / k select the next / previous item, a approves it, r rejects it, e edits its
// first field. Keys typed into a field are left alone; Escape leaves the field.
(function () {
  "use strict";

  function open() {
    return Array.prototype.slice.call(document.querySelectorAll("#queue article.item:not(.sent)"));
  }

  function selected() {
    return document.querySelector("#queue article.item.selected");
  }

  function select(item) {
    var before = selected();
    if (before) {
      before.classList.remove("selected");
      before.removeAttribute("aria-current");
    }
    if (!item) {
      return;
    }
    item.classList.add("selected");
    item.setAttribute("aria-current", "true");
    item.focus({ preventScroll: true });
    item.scrollIntoView({ block: "nearest" });
  }

  function step(offset) {
    var items = open();
    if (items.length === 0) {
      return;
    }
    var at = items.indexOf(selected());
    var next = at < 0 ? 0 : Math.min(Math.max(at + offset, 0), items.length - 1);
    select(items[next]);
  }

  function decide(key) {
    var item = selected() || open()[0];
    if (!item) {
      return;
    }
    var button = item.querySelector('button[data-key="' + key + '"]');
    if (!button) {
      return;
    }
    var items = open();
    var following = items[items.indexOf(item) + 1] || null;
    button.click();
    select(following);
  }

  function edit() {
    var item = selected() || open()[0];
    var input = item && item.querySelector('input[data-key="e"]');
    if (input) {
      select(item);
      input.focus();
      input.select();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || !document.getElementById("queue")) {
      return;
    }
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable)) {
      if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    var actions = { j: function () { step(1); }, k: function () { step(-1); },
      a: function () { decide("a"); }, r: function () { decide("r"); }, e: edit };
    var action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
})();
