package lbclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"
)

// Replayable is goblog's one retry rule: a request may be sent again, to
// another instance, only when its method is idempotent (RFC 9110 §9.2.2:
// GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and its body can be sent again
// (none, or GetBody set). Every transport that retries (this package's and
// the watcher-fed swarmwatcher/sd one) asks it.
func Replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// vipRetries bounds the further attempts of a request whose first attempt
// failed in vip mode; each goes on a connection not tried before.
const vipRetries = 3

// minRetryDial is the shortest connect timeout a retry gets.
const minRetryDial = 100 * time.Millisecond

// retryVIP sends req again after its first attempt, on lane failed, broke
// before any answer in vip mode (one address: the service's VIP, behind which
// IPVS picks a task per new connection).
//
// A task on a node that stopped stays among the VIP's backends until swarm
// notices (seconds): IPVS still sends new connections to it (the dial times
// out) and kept connections to it hang until TCP_USER_TIMEOUT. Neither lane
// nor address tells which task a connection reaches, so a retry that simply
// takes the next lane or dials again may meet the same dead task. Instead
// each retry goes, in this order, on
//   - the most recently used idle connection that completed an answer after
//     the first attempt began (its task was alive while that attempt failed);
//   - else a new connection, with a short connect timeout (a live task
//     answers a SYN at once; IPVS gives each new connection the next task).
//
// A failure that says a peer is gone (a connect or an acknowledgement timed
// out) also closes every idle connection not proven since the first attempt
// began: some of them reach the dead task, and the next requests would each
// wait a user timeout on them. At most vipRetries retries are made.
func (t *Transport) retryVIP(req *http.Request, set *laneSet, failed *lane, idx int, started time.Time, err error) (*http.Response, error) {
	ctx := req.Context()
	skip := failed
	for attempt := 0; attempt < vipRetries; attempt++ {
		if peerGone(err) {
			for _, l := range set.lanes {
				l.closeIdleBefore(started)
			}
		}
		l, pc := set.takeProven(started, skip, t.cfg.MaxInFlightPerTask)
		if l == nil {
			l, _ = set.pick(uint64(idx+1+attempt), skip, t.cfg.MaxInFlightPerTask)
			if l == nil {
				return nil, err
			}
			dctx, cancel := context.WithTimeout(ctx, t.retryDialTimeout())
			var derr error
			pc, derr = l.dial(dctx)
			cancel()
			if derr != nil {
				l.inflight.Add(-1)
				if cerr := ctx.Err(); cerr != nil {
					return nil, fmt.Errorf("%w (%v)", cerr, derr)
				}
				err, skip = derr, l
				continue
			}
		}
		retry := req
		if req.GetBody != nil {
			body, berr := req.GetBody()
			if berr != nil {
				l.put(pc)
				l.inflight.Add(-1)
				return nil, err
			}
			retry = req.Clone(ctx)
			retry.Body = body
		}
		t.retries.Add(1)
		resp, answered, rerr := l.send(retry, pc)
		if rerr == nil {
			return resp, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("%w (%v)", cerr, rerr)
		}
		if answered || !retryable(rerr) {
			return nil, rerr
		}
		err, skip = rerr, l
	}
	return nil, err
}

// retryDialTimeout is a retry's connect timeout: a quarter of DialTimeout,
// at least minRetryDial (and at most DialTimeout).
func (t *Transport) retryDialTimeout() time.Duration {
	return min(t.cfg.DialTimeout, max(t.cfg.DialTimeout/4, minRetryDial))
}

// peerGone says whether err means the peer stopped answering at all (a
// connect timed out, or sent data went unacknowledged), as a stopped node
// does, rather than refusing or resetting.
func peerGone(err error) bool {
	return errors.Is(err, syscall.ETIMEDOUT) || (isDialError(err) && isTimeout(err))
}

// takeProven finds, among the lanes other than skip, the idle connection that
// most recently completed an answer after since, and takes it with its lane
// (counted in flight there, within max). nil when there is none.
func (s *laneSet) takeProven(since time.Time, skip *lane, max int) (*lane, *pconn) {
	var best *lane
	var bestAt time.Time
	for _, l := range s.lanes {
		if l == skip {
			continue
		}
		if at := l.newestIdle(); at.After(since) && at.After(bestAt) {
			best, bestAt = l, at
		}
	}
	if best == nil {
		return nil, nil
	}
	if v := best.inflight.Add(1); max > 0 && v > int64(max) {
		best.inflight.Add(-1)
		return nil, nil
	}
	if pc := best.takeIdleAfter(since); pc != nil {
		return best, pc
	}
	best.inflight.Add(-1) // taken meanwhile by another request
	return nil, nil
}
