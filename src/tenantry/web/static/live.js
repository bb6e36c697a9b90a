// The live views (htmx's SSE extension, `sse-connect`): the element says whether its stream is
// connected (`data-live="open"`, or "retrying" after an error, when the browser reconnects
// and the server goes on after the last event it sent), and its status line says so in words.
"use strict";

(() => {
  const WORDS = {
    open: "Connected: new events appear here as they happen.",
    retrying: "Connection lost; reconnecting…",
  };

  function mark(element, state) {
    element.dataset.live = state;
    const status = element.dataset.liveStatus && document.getElementById(element.dataset.liveStatus);
    if (status) status.textContent = WORDS[state];
  }

  document.addEventListener("htmx:sseOpen", (event) => mark(event.target, "open"));
  document.addEventListener("htmx:sseError", (event) => mark(event.target, "retrying"));
})();
