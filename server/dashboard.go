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
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/admin", http.FileServer(http.FS(sub)))
	serve := func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(c.Writer, c.Request)
	}
	e.GET("/admin", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/admin/") })
	e.GET("/admin/", serve)
	e.GET("/admin/assets/*file", serve)
}
