package server

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/openai"
	"github.com/claude-route/claude-route/tiers"
)

// GET /v1/models and /v1/models/{id}: the models a key's tier may call and
// the aliases that lead to them, in OpenAI's shape to OpenAI clients and in
// Anthropic's to everyone else.

// tierModels lists the tier's models, then the aliases whose model the tier
// may call (sorted), each named "<alias> → <display name>".
func tierModels(t *tiers.Table, tr *tiers.Tier) []tiers.Model {
	out := t.ModelsFor(tr)
	names := make([]string, 0, len(t.Aliases))
	for a := range t.Aliases {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		real := t.Aliases[a]
		fam := t.FamilyOf(real)
		if !tr.Allows(fam) {
			continue
		}
		dn := real
		for _, m := range out {
			if m.ID == real {
				dn = m.DisplayName
			}
		}
		out = append(out, tiers.Model{ID: a, DisplayName: a + " → " + dn, Family: fam})
	}
	return out
}

type anthropicModel struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

type openaiModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func toAnthropic(m tiers.Model) anthropicModel {
	return anthropicModel{Type: "model", ID: m.ID, DisplayName: m.DisplayName,
		CreatedAt: time.Unix(modelCreated(m.ID), 0).UTC().Format(time.RFC3339)}
}

func toOpenAI(m tiers.Model) openaiModel {
	return openaiModel{ID: m.ID, Object: "model", Created: modelCreated(m.ID), OwnedBy: "anthropic"}
}

// modelList answers GET /v1/models.
func (s *Server) modelList(c *gin.Context) {
	oa := isOpenAIClient(c.Request.Header)
	w := s.callerWriter(c, oa)
	cl := s.requireCaller(w, c.Request)
	if cl == nil {
		w.finish()
		return
	}
	ms := tierModels(s.d.Tiers.Load(), cl.Tier)
	if oa {
		data := make([]openaiModel, 0, len(ms))
		for _, m := range ms {
			data = append(data, toOpenAI(m))
		}
		c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
		return
	}
	data := make([]anthropicModel, 0, len(ms))
	for _, m := range ms {
		data = append(data, toAnthropic(m))
	}
	resp := gin.H{"data": data, "has_more": false, "first_id": nil, "last_id": nil}
	if len(data) > 0 {
		resp["first_id"], resp["last_id"] = data[0].ID, data[len(data)-1].ID
	}
	c.JSON(http.StatusOK, resp)
}

// modelGet answers GET /v1/models/{id} for a model or alias the key's tier
// may call; any other id is a 404.
func (s *Server) modelGet(c *gin.Context) {
	oa := isOpenAIClient(c.Request.Header)
	w := s.callerWriter(c, oa)
	defer w.finish()
	cl := s.requireCaller(w, c.Request)
	if cl == nil {
		return
	}
	id := c.Param("id")
	for _, m := range tierModels(s.d.Tiers.Load(), cl.Tier) {
		if m.ID != id {
			continue
		}
		if oa {
			c.JSON(http.StatusOK, toOpenAI(m))
		} else {
			c.JSON(http.StatusOK, toAnthropic(m))
		}
		return
	}
	writeError(w, http.StatusNotFound, errNotFound, "model: "+id+" is not a model your key may use (GET /v1/models lists them)")
}

// callerWriter is where a handler answering either shape writes: errors
// become OpenAI's shape for OpenAI clients (finish sends them).
func (s *Server) callerWriter(c *gin.Context, oa bool) interface {
	http.ResponseWriter
	finish()
} {
	if oa {
		return &openaiWriter{ResponseWriter: c.Writer, body: &convertingBody{}, now: s.d.Clock.Now}
	}
	return plainWriter{c.Writer}
}

type plainWriter struct{ http.ResponseWriter }

func (plainWriter) finish() {}

// openaiPaths are path prefixes under /v1 that only OpenAI's API has: an
// unknown route there answers in OpenAI's error shape.
var openaiPaths = []string{"/v1/chat/", "/v1/responses", "/v1/completions", "/v1/embeddings", "/v1/images",
	"/v1/audio", "/v1/files", "/v1/assistants", "/v1/threads", "/v1/moderations", "/v1/fine_tuning",
	"/v1/vector_stores", "/v1/realtime", "/v1/uploads", "/v1/conversations", "/v1/batches"}

// notFound answers an unknown route in the caller's error shape: OpenAI's
// for OpenAI clients and OpenAI-only paths, Anthropic's for the rest.
func (s *Server) notFound(e *gin.Engine) {
	e.NoRoute(func(c *gin.Context) {
		msg := "Not found: " + c.Request.Method + " " + c.Request.URL.Path
		p := c.Request.URL.Path
		oa := isOpenAIClient(c.Request.Header)
		for _, pre := range openaiPaths {
			oa = oa || strings.HasPrefix(p, pre)
		}
		if !oa || !strings.HasPrefix(p, "/v1/") {
			writeError(c.Writer, http.StatusNotFound, errNotFound, msg)
			return
		}
		if strings.HasPrefix(p, "/v1/responses/") {
			msg += " (this proxy is stateless: it keeps no responses to retrieve, cancel or delete)"
		}
		e := &openai.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found", Message: msg}
		c.Data(http.StatusNotFound, "application/json", e.JSON())
	})
}

// modelCreated reads the release date at the end of a model id
// (claude-sonnet-4-5-20250929); ids without one get the date the Anthropic
// list shows.
func modelCreated(id string) int64 {
	if i := strings.LastIndexByte(id, '-'); i >= 0 {
		if t, err := time.Parse("20060102", id[i+1:]); err == nil {
			return t.Unix()
		}
	}
	return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
}
