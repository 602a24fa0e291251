package server

import (
	"context"
	"time"

	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/tiers"
)

// issueSpec is what a key of tier is issued with: the tier's validity,
// from its first use when the request says so or, when it does not say,
// when the tier's validity_from is "first_use".
func issueSpec(tier *tiers.Tier, fromFirstUse *bool, note, account string) keys.IssueSpec {
	first := tier.FromFirstUse()
	if fromFirstUse != nil {
		first = *fromFirstUse
	}
	return keys.IssueSpec{Tier: tier.Name, Validity: time.Duration(tier.Validity), FromFirstUse: first,
		Note: note, Account: account}
}

// activate starts the validity of a key that waited for its first
// successful request. Redis decides once across replicas (keys.Activate);
// the key's cached record is dropped so this replica sees the expiry at
// once, the others within CACHE_TTL. It runs after the answer, tracked by
// the server's background group.
func (s *Server) activate(cl *caller) {
	at := s.d.Clock.Now()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		exp, did, err := s.d.Keys.Activate(ctx, cl.Hash, at)
		s.gate.ForgetKey(cl.Hash)
		if err != nil {
			s.log.WithFields(logFields(cl)).WithError(err).Warn("could not activate the key at its first use")
			return
		}
		if did {
			s.log.WithFields(logFields(cl)).Infof("key activated at its first use; expires %s", exp.UTC().Format(time.RFC3339))
		}
	}()
}
