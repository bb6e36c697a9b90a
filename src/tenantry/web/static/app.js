// The dashboard's own script: Alpine components (registered here because the CSP build of
// Alpine evaluates no expressions written in the page) and small htmx settings. No inline
// script anywhere: the Content-Security-Policy allows only files under /static/.
"use strict";

document.addEventListener("alpine:init", () => {
  const Alpine = window.Alpine;

  // A secret shown once, with a button that copies it. `copied` says so for a moment.
  Alpine.data("copySecret", () => ({
    copied: false,
    copy() {
      const value = this.$refs.secret.textContent.trim();
      const done = () => {
        this.copied = true;
        setTimeout(() => { this.copied = false; }, 2500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(value).then(done, () => this.selectSecret());
      } else {
        this.selectSecret();
        done();
      }
    },
    selectSecret() {
      const range = document.createRange();
      range.selectNodeContents(this.$refs.secret);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand && document.execCommand("copy");
    },
    get label() { return this.copied ? "Copied" : "Copy"; },
  }));

  // A deletion confirmed by typing the thing's name: the button stays disabled until it matches.
  Alpine.data("typedConfirm", () => ({
    typed: "",
    expected: "",
    init() { this.expected = this.$el.dataset.expected || ""; },
    get mismatch() { return this.typed.trim() !== this.expected; },
  }));
});

// After htmx swaps a part of the page in, move focus to the first error it shows, so a screen
// reader and the keyboard land where the form needs attention.
document.addEventListener("htmx:afterSwap", (event) => {
  // A swap from a stream (the SSE extension) names no target: nothing there to focus.
  const target = event.detail.target;
  if (!target) return;
  const invalid = target.querySelector("[aria-invalid='true'], .form-error");
  if (invalid) invalid.focus({ preventScroll: false });
});
