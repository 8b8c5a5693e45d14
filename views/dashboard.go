package views

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed dashboard
var dashboard embed.FS

// Dashboard serves the single-page dashboard (index.html, app.js,
// style.css) embedded in the binary: a live alert feed, a user lookup and
// partition health, all read from the /v1 API. The page is static and open;
// with --auth-token it asks for the token and sends it on every /v1 call.
func Dashboard() http.Handler {
	sub, err := fs.Sub(dashboard, "dashboard")
	if err != nil {
		panic(err) // the directory is embedded above; this cannot fail
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		// Nothing but this origin: the page loads no outside resource.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
