package server

import (
	"context"
	"strings"
	"testing"

	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
	"github.com/goblog/goblog/swarmwatcher/internal/wire"
)

// A services frame carries only the services the update rebuilt, so the
// bytes a ?views=1 client gets per change follow the change, not the swarm;
// a client following another service gets nothing.
func TestServicesFrameCarriesOnlyTheUpdatedServices(t *testing.T) {
	snap := snapshot(task("t1", "10.0.1.7", 1))
	other := swarm.Service{ID: "s2", Name: "goblog_quotes-service", ProbePort: 8080, ProbePath: "/health",
		Tasks: []swarm.Task{task("q1", "10.0.1.9", 1)}}
	snap.Services = append(snap.Services, other)
	d := &fakeDisc{snap: snap}
	w := newWatcher(t, d)
	ctx := context.Background()
	_ = w.Refresh(ctx)
	_, sub := w.Subscribe(100)
	defer sub.Close()

	next := snap
	next.Services = append([]swarm.Service(nil), snap.Services...)
	next.Services[1].Tasks = append(next.Services[1].Tasks, task("q2", "10.0.1.10", 2))
	d.set(next, nil)
	_ = w.Refresh(ctx)

	s := New(Config{}, w)
	var views *frame
	for {
		m := <-sub.C()
		if m.Value.Services != nil {
			f, err := s.newFrame(m.Value, m.Seq)
			if err != nil {
				t.Fatal(err)
			}
			views = f
			break
		}
	}
	all := string(views.bytes("", true))
	if !strings.Contains(all, `"name":"goblog_quotes-service"`) || strings.Contains(all, `"name":"goblog_accountservice"`) {
		t.Errorf("services frame = %s; want only the changed quotes-service", all)
	}
	if b := views.bytes("goblog_accountservice", true); b != nil {
		t.Errorf("a client following the unchanged service got %q", b)
	}
	if b := views.bytes("goblog_quotes-service", false); b != nil {
		t.Errorf("a client without views got %q", b)
	}
}

// The cache encodes a service once per version: the same bytes come back
// until the watcher rebuilds it, and services gone from the view are
// forgotten.
func TestServiceCacheEncodesOncePerVersion(t *testing.T) {
	var c serviceCache
	s := watch.Service{Service: swarm.Service{ID: "s1", Name: "a"}, Version: 3}
	b1, err := c.service(&s)
	if err != nil {
		t.Fatal(err)
	}
	s.Name = "changed without a new version: the cache may answer"
	b2, _ := c.service(&s)
	if &b1[0] != &b2[0] {
		t.Error("same version encoded twice")
	}
	s.Version = 4
	b3, _ := c.service(&s)
	if !strings.Contains(string(b3), "changed without") {
		t.Errorf("new version served the old bytes: %s", b3)
	}
	unversioned := watch.Service{Service: swarm.Service{ID: "s9", Name: "x"}}
	if _, _ = c.service(&unversioned); len(c.byID) != 1 {
		t.Errorf("a service without a version was cached: %d entries", len(c.byID))
	}
	c.prune(nil)
	if len(c.byID) != 0 {
		t.Errorf("prune kept %d services gone from the view", len(c.byID))
	}
	list, err := c.list([]watch.Service{s, {Service: swarm.Service{ID: "s2", Name: "b"}, Version: 1}}, wire.Filter{Name: "b"})
	if err != nil || !strings.HasPrefix(string(list), `[{"id":"s2"`) || strings.Count(string(list), `"id"`) != 1 {
		t.Errorf("filtered list = %s, %v", list, err)
	}
}
