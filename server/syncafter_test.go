package server

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/syncer"
)

type joinedFirst struct{ calls int }

func (j *joinedFirst) Sync(context.Context) (syncer.Report, error) {
	j.calls++
	return syncer.Report{ID: "run", Joined: j.calls == 1}, nil
}

func (j *joinedFirst) Last(context.Context) (*syncer.Report, error) { return nil, nil }

// An account change followed by a sync that only joined one already
// running (which may have read the old file) runs one more sync.
func TestSyncAfterAChangeStartsAfterIt(t *testing.T) {
	for _, tc := range []struct {
		name      string
		joinFirst bool
		want      int
	}{{"joined a running sync", true, 2}, {"ran its own", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &joinedFirst{}
			if !tc.joinFirst {
				fake.calls = 1 // the next call reports a run of its own
			}
			s := &Server{d: Deps{Syncer: fake}}
			c, _ := gin.CreateTestContext(httptest.NewRecorder())
			c.Request = httptest.NewRequest("POST", "/admin/api/accounts/a1/enable", nil)
			var d AccountDetail
			start := fake.calls
			s.syncAfter(c, &d)
			if got := fake.calls - start; got != tc.want || !d.Synced {
				t.Fatalf("%d syncs (synced %v), want %d", got, d.Synced, tc.want)
			}
		})
	}
}
