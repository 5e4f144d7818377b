// The browser's one script: ask before a form marked data-confirm (delete) is sent.
// Served from /ui/static because the pages' Content-Security-Policy allows no inline script.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
