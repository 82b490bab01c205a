package exepages

import (
	"context"
	"log/slog"
	"time"

	"github.com/goblog/goblog/internal/conf"
)

// FlagName is the flag (and, by conf's rule, EXE_RELEASE_INTERVAL the
// variable) that sets how often Run releases, the same in every binary.
const FlagName = "exe-release-interval"

// DefaultInterval is how often Run releases unless told otherwise. Each
// release costs the pages the process still runs faulting back in, one at a
// time (about 1,000 for accountservice under load, once a minute).
const DefaultInterval = time.Minute

// AddFlag defines -exe-release-interval on s, storing the interval in p.
func AddFlag(s *conf.Set, p *time.Duration) {
	s.Duration(p, FlagName, DefaultInterval, "how often to give back the pages of this binary that serving does not touch; the first time is right after start-up (0: never)", conf.AtLeast(time.Duration(0)))
}

// Run releases the binary's pages at once and then every interval until ctx
// ends; interval 0 means never, not even once. The pages a process still
// uses come back as it runs them, so each release leaves it holding what it
// touched since the last one: start-up's code and data go after the first,
// those of a burst of unusual requests after the next.
//
// A failed release is logged and ends the loop (the kernel offers no such
// advice, or /proc is unreadable: the next try would fail the same way); it
// never stops the caller, so Run returns nil.
func Run(ctx context.Context, interval time.Duration, logger *slog.Logger) error {
	if interval <= 0 {
		return nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b, err := locate() // once: the binary's mappings stay where they are
	if err != nil {
		logger.Warn("binary's pages kept: release failed; not trying again", "err", err)
		return nil
	}
	defer b.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for first := true; ; first = false {
		r, err := b.release()
		if err != nil {
			logger.Warn("binary's pages kept: release failed; not trying again", "err", err)
			return nil
		}
		if first {
			logger.Info("binary's pages released; again every interval", "interval", interval.String(),
				"mappings", r.Mappings, "bytes", r.Bytes, "rssFileBefore", r.RSSFileBefore, "rssFileAfter", r.RSSFileAfter)
		} else {
			logger.Debug("binary's pages released", "rssFileBefore", r.RSSFileBefore, "rssFileAfter", r.RSSFileAfter)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
