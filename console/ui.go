package console

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed ui
var ui embed.FS

// secure sets the headers of every dashboard file: nothing is loaded from
// elsewhere, and no other site may frame it.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// dashboard serves the page at /.
func (s *Server) dashboard() http.Handler {
	return secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, ui, "ui/index.html")
	}))
}

// assets serves the page's script and style under /ui/.
func (s *Server) assets() http.Handler {
	sub, _ := fs.Sub(ui, "ui")
	return secure(http.StripPrefix("/ui/", http.FileServerFS(sub)))
}
