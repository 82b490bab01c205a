package watch

import (
	"time"

	"github.com/goblog/goblog/swarmwatcher/api"
)

// Diff lists the changes that turn old into new, in an order a client can
// apply: for a new service first service-created, then its tasks; for a
// gone service first its tasks' removal, then service-removed. Services are
// matched by ID, tasks by ID; a task's health is the only field whose change
// is reported (latency and history change on every probe).
func Diff(old, new []Service, at time.Time) []Change {
	all := make([]int, len(new))
	for i := range all {
		all[i] = i
	}
	return diff(old, new, all, at)
}

// diff is Diff over the services of new at the indices updated (in order)
// and the services gone from old: the others are the same values in both,
// so they hold no change.
func diff(old, new []Service, updated []int, at time.Time) []Change {
	var out []Change
	oldByID := make(map[string]*Service, len(old))
	for i := range old {
		oldByID[old[i].ID] = &old[i]
	}
	seen := make(map[string]bool, len(new))
	for i := range new {
		seen[new[i].ID] = true
	}
	for _, i := range updated {
		ns := &new[i]
		os, existed := oldByID[ns.ID]
		if !existed {
			out = append(out, Change{Type: api.ServiceCreated, Service: ns.Name, At: at})
			for j := range ns.Tasks {
				out = append(out, Change{Type: api.TaskAdded, Service: ns.Name, Task: &ns.Tasks[j], At: at})
			}
			continue
		}
		oldTasks := make(map[string]*Task, len(os.Tasks))
		for j := range os.Tasks {
			oldTasks[os.Tasks[j].ID] = &os.Tasks[j]
		}
		kept := make(map[string]bool, len(ns.Tasks))
		for j := range ns.Tasks {
			nt := &ns.Tasks[j]
			kept[nt.ID] = true
			ot, ok := oldTasks[nt.ID]
			switch {
			case !ok:
				out = append(out, Change{Type: api.TaskAdded, Service: ns.Name, Task: nt, At: at})
			case ot.Health != nt.Health:
				out = append(out, Change{Type: api.HealthChanged, Service: ns.Name, Task: nt, At: at})
			}
		}
		for j := range os.Tasks {
			if ot := &os.Tasks[j]; !kept[ot.ID] {
				out = append(out, Change{Type: api.TaskRemoved, Service: ns.Name, Task: ot, At: at})
			}
		}
	}
	for i := range old {
		os := &old[i]
		if seen[os.ID] {
			continue
		}
		for j := range os.Tasks {
			out = append(out, Change{Type: api.TaskRemoved, Service: os.Name, Task: &os.Tasks[j], At: at})
		}
		out = append(out, Change{Type: api.ServiceRemoved, Service: os.Name, At: at})
	}
	return out
}
