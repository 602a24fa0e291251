package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/usage"
)

// adminUsageSeries answers the dashboard's 24-hour chart: requests and
// tokens per 5-minute bucket, oldest first, overall or (?key=KEY|ID) of
// one key. The buckets are the ones the rolling windows are made of.
func (s *Server) adminUsageSeries(c *gin.Context) {
	ctx := c.Request.Context()
	if s.d.Usage == nil {
		adminErr(c, http.StatusNotFound, "usage accounting is not configured")
		return
	}
	hash, id := "", ""
	if ref := c.Query("key"); ref != "" {
		rec, err := s.d.Keys.Get(ctx, ref)
		if err != nil {
			s.keyErr(c, err)
			return
		}
		hash, id = rec.Hash, rec.ID
	}
	pts, err := s.d.Usage.Series(ctx, hash)
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	if pts == nil {
		pts = []usage.Point{}
	}
	c.JSON(http.StatusOK, gin.H{"key": id, "bucket_seconds": int(usage.BucketSize / time.Second), "points": pts})
}
