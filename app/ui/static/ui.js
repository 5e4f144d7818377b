// The browser's one script: ask before a form marked data-confirm (delete) is sent.
// Served from /ui/static because the pages' Content-Security-Policy allows no inline script.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

// Pages show times and count days in the browser's time zone: tell the server which, for the next
// page (this one was rendered in the zone the cookie held, UTC the first time).
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (zone && !document.cookie.split("; ").includes("loci_tz=" + zone)) {
  document.cookie = "loci_tz=" + zone + "; path=/ui; max-age=31536000; SameSite=Strict";
}
