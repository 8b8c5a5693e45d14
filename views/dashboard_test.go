package views

import (
	"regexp"
	"strings"
	"testing"
)

// TestDashboardIsSelfContained: the page and its assets are served from the
// binary, carry the element ids the browser test and users rely on, and
// reference nothing outside this origin.
func TestDashboardIsSelfContained(t *testing.T) {
	h := Dashboard()
	page := get(t, h, "/")
	if page.Code != 200 || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", page.Code, page.Header().Get("Content-Type"))
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	html := page.Body.String()
	for _, id := range []string{"alert-feed", "lookup-form", "lookup-input", "user-windows", "user-reasons",
		"user-alerts", "partitions", "status", "token-form"} {
		if !strings.Contains(html, `id="`+id+`"`) {
			t.Errorf("no #%s in the page", id)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(refs) < 2 {
		t.Fatalf("the page references %d assets", len(refs))
	}
	for _, f := range []string{"/", "/app.js", "/style.css"} {
		body := get(t, h, f).Body.String()
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindString(body); m != "" {
			t.Errorf("%s refers to another origin: %q", f, m)
		}
	}
	for _, r := range refs {
		if strings.Contains(r[1], ":") || strings.HasPrefix(r[1], "//") {
			t.Errorf("external reference %q", r[1])
		}
	}
	for _, f := range []string{"/app.js", "/style.css"} {
		if rec := get(t, h, f); rec.Code != 200 || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d", f, rec.Code)
		}
	}
	if rec := get(t, h, "/nope.js"); rec.Code != 404 {
		t.Errorf("GET /nope.js: %d", rec.Code)
	}
}
