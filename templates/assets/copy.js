// Copy buttons: a <button class="copy" data-copy="ID" hidden> copies the text of
// the element with that id. The buttons ship hidden, so without JavaScript no
// dead button shows; this script reveals them.
(function () {
  "use strict";
  var buttons = document.querySelectorAll("button.copy[data-copy]");
  if (!buttons.length) return;
  // One polite live region tells screen readers what happened.
  var status = document.createElement("span");
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  document.body.appendChild(status);

  // Without the Clipboard API (an insecure context, an old browser), copy the
  // selection the old way; if even that fails, leave the text selected.
  function fallback(source) {
    var selection = window.getSelection();
    var range = document.createRange();
    range.selectNodeContents(source);
    selection.removeAllRanges();
    selection.addRange(range);
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    if (done) selection.removeAllRanges();
    return done ? Promise.resolve() : Promise.reject(new Error("selected"));
  }
  function copy(source) {
    var text = source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallback(source); });
    }
    return fallback(source);
  }
  function report(button, label, message) {
    var visible = button.querySelector(".label");
    visible.textContent = label;
    status.textContent = message;
    clearTimeout(button._timer);
    button._timer = setTimeout(function () { visible.textContent = "Copy"; }, 2000);
  }
  Array.prototype.forEach.call(buttons, function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      copy(source).then(function () {
        report(button, "Copied", "Copied to the clipboard.");
      }, function () {
        report(button, "Press Ctrl+C", "The text is selected: press Ctrl+C (or ⌘C) to copy it.");
      });
    });
  });
})();
