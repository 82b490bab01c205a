package turbine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/goblog/goblog/internal/tenant"
	"github.com/goblog/goblog/turbine/api"
)

// maxNameLen bounds a sample's type plus name.
const maxNameLen = 512

// Errors Update returns when a host breaks a bound; its stream is then cut.
var (
	ErrTooManyKeys  = errors.New("host reports more distinct samples than allowed")
	ErrTooManyBytes = errors.New("host's samples exceed the byte budget")
	errHostGone     = errors.New("host removed")
)

// Sample is one decoded Hystrix stream event (a HystrixCommand or HystrixThreadPool object).
type Sample map[string]any

// key identifies what a sample describes: its type and name.
type key struct{ typ, name string }

// ParseSample decodes the JSON of one `data:` line. It needs string "type" and "name".
func ParseSample(data []byte) (Sample, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var s Sample
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode sample: %w", err)
	}
	if s == nil {
		return nil, errors.New("sample is not an object")
	}
	if dec.More() {
		return nil, errors.New("trailing data after the sample")
	}
	typ, _ := s["type"].(string)
	name, _ := s["name"].(string)
	if typ == "" || name == "" || len(typ)+len(name) > maxNameLen {
		return nil, errors.New("sample lacks a type or name")
	}
	return s, nil
}

func (s Sample) key() key {
	typ, _ := s["type"].(string)
	name, _ := s["name"].(string)
	return key{typ, name}
}

type entry struct {
	s    Sample
	size int // bytes of the line it came from
}

// Host is one instance's place in the aggregator; its pointer identifies one connection's
// generation, so a stream that was removed cannot add data back.
type Host struct {
	id, service, tenant string
	samples             map[key]entry
	bytes               int
}

// Aggregator keeps the latest sample of every (type, name) from every connected host and
// computes the cluster view the way Netflix Turbine does: numbers are summed across hosts
// (the dashboard divides means, percentiles and properties by reportingHosts), a boolean
// or string that all hosts agree on is kept and one they disagree on becomes a map of value
// to host count, and reportingHosts is the sum of the hosts' own (1 each). A host's
// contribution leaves the aggregate as soon as the host is removed. Each host is bounded in
// distinct keys and in the bytes of the samples it holds.
type Aggregator struct {
	maxKeys, maxBytes int

	mu    sync.Mutex
	hosts map[string]*Host
}

// NewAggregator returns an empty Aggregator holding at most maxKeys samples and maxBytes
// bytes of samples per host (zero or less: the defaults).
func NewAggregator(maxKeys, maxBytes int) *Aggregator {
	d := DefaultConfig()
	if maxKeys <= 0 {
		maxKeys = d.MaxKeysPerHost
	}
	if maxBytes <= 0 {
		maxBytes = d.MaxBytesPerHost
	}
	return &Aggregator{maxKeys: maxKeys, maxBytes: maxBytes, hosts: map[string]*Host{}}
}

// AddHost starts a new generation for instance id of service and tenant ("" for a plain
// instance), dropping data of any previous one.
func (a *Aggregator) AddHost(id, service, tenant string) *Host {
	h := &Host{id: id, service: service, tenant: tenant, samples: map[key]entry{}}
	a.mu.Lock()
	a.hosts[id] = h
	a.mu.Unlock()
	return h
}

// RemoveHost takes the host's contribution out of the aggregate. A stale h (of an older
// generation) is ignored.
func (a *Aggregator) RemoveHost(h *Host) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hosts[h.id] == h {
		delete(a.hosts, h.id)
	}
}

// ClearHost forgets the host's samples but keeps it (its stream dropped and is retrying).
func (a *Aggregator) ClearHost(h *Host) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hosts[h.id] == h {
		h.samples = map[key]entry{}
		h.bytes = 0
	}
}

// Update records s, parsed from size bytes, as host h's latest sample for its (type,
// name). It returns ErrTooManyKeys or ErrTooManyBytes when the sample would break the
// host's bounds (the sample is not kept), and an error when h has been removed.
func (a *Aggregator) Update(h *Host, s Sample, size int) error {
	k := s.key()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hosts[h.id] != h {
		return errHostGone
	}
	old, ok := h.samples[k]
	if !ok && len(h.samples) >= a.maxKeys {
		return ErrTooManyKeys
	}
	if h.bytes-old.size+size > a.maxBytes {
		return ErrTooManyBytes
	}
	h.samples[k] = entry{s: s, size: size}
	h.bytes += size - old.size
	return nil
}

// Keys is the number of distinct (type, name) samples across hosts, counted without
// building the aggregate.
func (a *Aggregator) Keys() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[key]struct{}{}
	for _, h := range a.hosts {
		for k := range h.samples {
			seen[k] = struct{}{}
		}
	}
	return len(seen)
}

// Cluster selects the hosts an aggregate covers; ParseCluster reads it from the
// ?cluster= syntax (api.QueryCluster). The zero value selects every host.
type Cluster struct {
	Service string // "" means every service
	// Tenant is the tenant selected when ByTenant ("" then means the plain hosts only);
	// without ByTenant every tenant's hosts and the plain ones are selected.
	Tenant   string
	ByTenant bool
}

// ParseCluster reads "<service>", "<service>@<tenant>", "<service>@" (plain only) or
// "@<tenant>" (every service). A tenant part that is no tenant name (letters, digits and
// '-', at most 32) is an error; so is "@" alone.
func ParseCluster(s string) (Cluster, error) {
	service, ten, by := strings.Cut(s, api.ClusterTenantSep)
	switch {
	case !by:
		return Cluster{Service: s}, nil
	case ten == "" && service == "":
		return Cluster{}, errors.New("cluster: \"@\" names neither a service nor a tenant")
	case ten != "" && !tenant.Valid(ten):
		return Cluster{}, fmt.Errorf("cluster: tenant %q: want 1 to %d letters, digits or '-'", ten, tenant.MaxLen)
	}
	return Cluster{Service: service, Tenant: ten, ByTenant: true}, nil
}

func (c Cluster) has(h *Host) bool {
	return (c.Service == "" || h.service == c.Service) && (!c.ByTenant || h.tenant == c.Tenant)
}

// Snapshot returns the aggregate of the hosts cluster selects, one Sample per (type, name),
// sorted by type then name.
func (a *Aggregator) Snapshot(cluster Cluster) []Sample {
	a.mu.Lock()
	byKey := map[key][]Sample{}
	for _, id := range sortedHostIDs(a.hosts) {
		h := a.hosts[id]
		if !cluster.has(h) {
			continue
		}
		for k, e := range h.samples {
			byKey[k] = append(byKey[k], e.s)
		}
	}
	a.mu.Unlock()

	keys := make([]key, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y key) int {
		if c := strings.Compare(x.typ, y.typ); c != 0 {
			return c
		}
		return strings.Compare(x.name, y.name)
	})
	out := make([]Sample, 0, len(keys))
	for _, k := range keys {
		out = append(out, merge(byKey[k]))
	}
	return out
}

func sortedHostIDs(m map[string]*Host) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// merge combines one (type, name)'s samples from several hosts. Samples are never
// modified: they are shared with the aggregator's state.
func merge(samples []Sample) Sample {
	out := Sample{}
	fields := map[string][]any{}
	for _, s := range samples {
		for f, v := range s {
			fields[f] = append(fields[f], v)
		}
	}
	for f, vs := range fields {
		switch f {
		case "type", "name", "group":
			out[f] = vs[0]
		case "currentTime":
			out[f] = maxNumber(vs)
		case "reportingHosts":
			// Hosts that do not say count as one, like the dashboard assumes.
			n := int64(len(samples) - len(vs))
			for _, v := range vs {
				if x, ok := v.(json.Number); ok {
					if i, err := x.Int64(); err == nil && i > 0 {
						n += i
						continue
					}
				}
				n++
			}
			out[f] = json.Number(fmt.Sprint(n))
		default:
			out[f] = mergeValues(vs)
		}
	}
	if _, ok := out["reportingHosts"]; !ok {
		out["reportingHosts"] = json.Number(fmt.Sprint(len(samples)))
	}
	return out
}

// mergeValues sums numbers, merges objects field by field, and keeps other values when all
// agree or counts them by value when they do not.
func mergeValues(vs []any) any {
	allNum, allObj := true, true
	for _, v := range vs {
		_, isNum := v.(json.Number)
		_, isObj := v.(map[string]any)
		allNum = allNum && isNum
		allObj = allObj && isObj
	}
	switch {
	case allNum:
		return sumNumbers(vs)
	case allObj:
		fields := map[string][]any{}
		for _, v := range vs {
			for f, x := range v.(map[string]any) {
				fields[f] = append(fields[f], x)
			}
		}
		out := make(map[string]any, len(fields))
		for f, xs := range fields {
			out[f] = mergeValues(xs)
		}
		return out
	}
	counts := map[string]int{}
	for _, v := range vs {
		counts[fmt.Sprint(v)]++
	}
	if len(counts) == 1 {
		return vs[0]
	}
	return counts
}

func sumNumbers(vs []any) json.Number {
	var isum int64
	var fsum float64
	integral := true
	for _, v := range vs {
		n := v.(json.Number)
		if i, err := n.Int64(); err == nil && integral {
			isum += i
			fsum += float64(i)
			continue
		}
		integral = false
		if f, err := n.Float64(); err == nil && !math.IsInf(f, 0) {
			fsum += f
		}
	}
	if integral {
		return json.Number(fmt.Sprint(isum))
	}
	if math.IsInf(fsum, 0) || math.IsNaN(fsum) {
		return json.Number("0")
	}
	return json.Number(strconv.FormatFloat(fsum, 'g', -1, 64))
}

func maxNumber(vs []any) any {
	var best any
	var bestF float64
	for _, v := range vs {
		n, ok := v.(json.Number)
		if !ok {
			continue
		}
		if f, err := n.Float64(); err == nil && (best == nil || f > bestF) {
			best, bestF = n, f
		}
	}
	if best == nil {
		return vs[0]
	}
	return best
}
