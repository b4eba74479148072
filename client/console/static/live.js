// Keep elements marked data-refresh="SECONDS" up to date by re-fetching the page's own partial view,
// and ask before a form marked data-confirm is sent. No library, nothing fetched from elsewhere.
"use strict";
for (const element of document.querySelectorAll("[data-refresh]")) {
  const seconds = Number(element.dataset.refresh) || 5;
  const refresh = async () => {
    const url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) {
        const html = await response.text();
        const parsed = new DOMParser().parseFromString(html, "text/html");
        const fresh = parsed.getElementById(element.id);
        element.innerHTML = fresh ? fresh.innerHTML : html;
        element.dataset.refreshedAt = new Date().toISOString();
      }
    } catch (error) {
      element.dataset.refreshError = String(error);
    }
    window.setTimeout(refresh, seconds * 1000);
  };
  window.setTimeout(refresh, seconds * 1000);
}
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
