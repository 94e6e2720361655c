// Keyboard shortcuts: any element with data-key="K" is clicked when K is pressed,
// unless the focus is in a text field. The rating page uses 1-4 (A-D), n and p.
"use strict";
document.addEventListener("keydown", function (event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  var target = event.target;
  if (target && target.closest && target.closest("input, textarea, select")) return;
  var element = document.querySelector('[data-key="' + CSS.escape(event.key) + '"]');
  if (!element) return;
  event.preventDefault();
  element.click();
});
