package server

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"
)

// The dashboard is plain files compiled into the binary: no CDN, no build
// step at run time. It talks to /admin/api with the token the operator
// types in.
//
//go:embed dashboard
var dashboardFiles embed.FS

func (s *Server) dashboardRoutes(e *gin.Engine) {
	servePage(e, dashboardFiles, "dashboard", "/admin")
	e.GET("/admin", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/admin/") })
}

// servePage serves an embedded page, the folder dir of files, at prefix+"/"
// (its index) and prefix+"/assets/", with headers that keep it to its own
// origin: no framing, no third-party script, no Referer. It returns the
// handler, for the caller's route of the bare prefix.
func servePage(e *gin.Engine, files embed.FS, dir, prefix string) gin.HandlerFunc {
	sub, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fileServer := http.StripPrefix(prefix, http.FileServer(http.FS(sub)))
	serve := func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(c.Writer, c.Request)
	}
	e.GET(prefix+"/", serve)
	e.GET(prefix+"/assets/*file", serve)
	return serve
}
