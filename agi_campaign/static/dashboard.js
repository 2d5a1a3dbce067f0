// agi-campaign dashboard: an error the guard or the API answers as JSON ({"error": "..."}:
// a body too large, a missing CSRF value) is shown as a message in the target, not as JSON.
document.addEventListener("htmx:beforeSwap", function (event) {
  var xhr = event.detail.xhr;
  if (!/^application\/json/.test(xhr.getResponseHeader("Content-Type") || "")) return;
  var message;
  try { message = JSON.parse(xhr.responseText).error; } catch (e) { message = null; }
  var p = document.createElement("p");
  p.className = "error";
  p.setAttribute("role", "alert");
  p.textContent = (message || xhr.statusText || "request failed") + " (HTTP " + xhr.status + ")";
  event.detail.serverResponse = p.outerHTML;
  event.detail.shouldSwap = true;
  event.detail.isError = true;
});
