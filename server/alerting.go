package server

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/alerts"
)

// AlertSink is the server's view of the alert sender.
type AlertSink interface {
	Recent(ctx context.Context) ([]alerts.Event, error)
	Send(ctx context.Context, e alerts.Event) (bool, error)
	Enabled() bool
}

func (s *Server) alertRoutes(a *gin.RouterGroup) {
	a.GET("/alerts", s.adminAlerts)
	a.POST("/alerts/test", s.adminAlertTest)
}

// adminAlerts lists the last events (at most 50), newest first.
func (s *Server) adminAlerts(c *gin.Context) {
	if s.d.Alerts == nil {
		c.JSON(http.StatusOK, gin.H{"alerts": []alerts.Event{}, "webhook": false})
		return
	}
	evs, err := s.d.Alerts.Recent(c.Request.Context())
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	c.JSON(http.StatusOK, gin.H{"alerts": evs, "webhook": s.d.Alerts.Enabled()})
}

// adminAlertTest sends a test event now and says how the first post went
// (a failed one is retried in the background like any other).
func (s *Server) adminAlertTest(c *gin.Context) {
	if s.d.Alerts == nil || !s.d.Alerts.Enabled() {
		adminErr(c, http.StatusBadRequest, "no webhook configured: set ALERT_WEBHOOK_URL and restart")
		return
	}
	ev := alerts.Event{Event: alerts.Test, At: s.d.Clock.Now(),
		Text: "claude-route: test alert. If you read this, alerts reach you."}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 15*time.Second)
	defer cancel()
	if _, err := s.d.Alerts.Send(ctx, ev); err != nil {
		adminErr(c, http.StatusBadGateway, "the webhook did not take the test event ("+err.Error()+"); it is retried for 10 minutes")
		return
	}
	c.JSON(http.StatusOK, gin.H{"sent": true, "event": ev})
}
