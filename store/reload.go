package store

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterReloadEvery bounds how often a failing cluster client re-reads the
// slot map: often enough to follow a promotion within about a second,
// rarely enough that a dead cluster costs one CLUSTER SLOTS per interval.
const clusterReloadEvery = 500 * time.Millisecond

// reloadOnFailure makes a cluster client re-read its slot map when a command
// fails without a reply from Redis (refused, reset or timed-out
// connection). go-redis reloads the map only on MOVED/ASK, READONLY or every
// 60 s: when a master dies, no node answers MOVED for its slots, so the
// client dials the dead address until the periodic reload, long after a
// replica has been promoted.
type reloadOnFailure struct {
	reload func()
	every  time.Duration
	now    func() time.Time
	last   atomic.Int64 // UnixNano of the last reload
}

func newReloadOnFailure(cc *redis.ClusterClient) *reloadOnFailure {
	return &reloadOnFailure{
		reload: func() { cc.ReloadState(context.Background()) }, // asynchronous
		every:  clusterReloadEvery, now: time.Now,
	}
}

func (h *reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.seen(err)
		return err
	}
}

func (h *reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.seen(err)
		return err
	}
}

// seen reloads the slot map after a transport failure, at most once per
// h.every across all goroutines.
func (h *reloadOnFailure) seen(err error) {
	if !transportFailure(err) {
		return
	}
	now := h.now().UnixNano()
	last := h.last.Load()
	if now-last < int64(h.every) || !h.last.CompareAndSwap(last, now) {
		return
	}
	h.reload()
}

// transportFailure reports an error that is not Redis's own reply: the node
// may be gone. A caller that gave up (context.Canceled) says nothing about
// the node.
func transportFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var re redis.Error // replies, redis.Nil included
	return !errors.As(err, &re)
}
