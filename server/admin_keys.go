package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/keys"
)

// adminListKeys answers one page of keys, oldest first: limit (default
// 100, at most 1000), cursor (the previous page's next_cursor), filters
// tier, status, account and q (a substring of the id, prefix, note or
// account). next_cursor is null on the last page. The page comes from the
// ledger in memory, so its cost does not grow with the number of keys;
// each key's account is its live binding where it has one.
func (s *Server) adminListKeys(c *gin.Context) {
	ctx := c.Request.Context()
	switch st := c.Query("status"); st {
	case "", keys.StatusActive, keys.StatusRevoked, keys.StatusExpired:
	default:
		adminErr(c, http.StatusBadRequest, "unknown status "+strqt(st)+"; want active, revoked or expired")
		return
	}
	limit := keys.DefaultPage
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > keys.MaxPage {
			adminErr(c, http.StatusBadRequest, "limit must be 1 to "+strconv.Itoa(keys.MaxPage))
			return
		}
		limit = n
	}
	f := keys.Filter{Tier: c.Query("tier"), Status: c.Query("status"), Query: c.Query("q"), Account: c.Query("account")}
	recs, next, err := s.d.Keys.Page(ctx, f, c.Query("cursor"), limit)
	if errors.Is(err, keys.ErrCursor) {
		adminErr(c, http.StatusBadRequest, "cursor is not one this server handed out")
		return
	}
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "could not list keys: "+err.Error())
		return
	}
	hashes := make([]string, len(recs))
	for i, r := range recs {
		hashes[i] = r.Hash
	}
	bound, err := s.d.Pool.BoundMany(ctx, hashes)
	if err != nil {
		bound = nil // views fall back to the ledger's account
	}
	out := make([]KeyView, 0, len(recs))
	for _, r := range recs {
		out = append(out, s.viewKey(r, bound))
	}
	var nc *string
	if next != "" {
		nc = &next
	}
	c.JSON(http.StatusOK, gin.H{"keys": out, "next_cursor": nc})
}
