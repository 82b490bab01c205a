package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/goblog/goblog/internal/tenant"
)

// Labels a service carries to opt in to probing.
const (
	LabelPort = "swarmwatcher.port"
	LabelPath = "swarmwatcher.path"
)

// DefaultNetwork is the stack's network, used when the watcher cannot tell
// which overlay network it is attached to itself.
const DefaultNetwork = "goblog_net"

// API is the part of the Docker Engine API the watcher uses: read-only calls.
type API interface {
	ServiceList(ctx context.Context, options swarm.ServiceListOptions) ([]swarm.Service, error)
	TaskList(ctx context.Context, options swarm.TaskListOptions) ([]swarm.Task, error)
	NodeList(ctx context.Context, options swarm.NodeListOptions) ([]swarm.Node, error)
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
}

var _ API = (*client.Client)(nil)

// Config tells Discovery what to read and how long each call may take.
type Config struct {
	// Networks names (or IDs) the overlay networks whose addresses are used.
	// Empty means: the overlay networks of the watcher's own container, else
	// DefaultNetwork, else the first overlay network that is not ingress.
	Networks []string
	// Hostname is this process's hostname; in a container it is the
	// container ID prefix, which finds the watcher's own networks.
	Hostname string
	// CallTimeout bounds every Engine API call.
	CallTimeout time.Duration
	// Logger receives what the discovery decides (nil: discard).
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.CallTimeout <= 0 {
		return errors.New("call timeout must be positive")
	}
	for _, n := range c.Networks {
		if n == "ingress" {
			return errors.New("the ingress network carries no task addresses: pick the stack's overlay network")
		}
	}
	return nil
}

// Snapshot is the swarm's state as one refresh saw it.
type Snapshot struct {
	Services []Service
	// Networks are the names of the networks addresses were taken from.
	Networks []string
}

// Service is one swarm service and its running tasks.
type Service struct {
	ID           string
	Name         string
	Labels       map[string]string
	Mode         string // replicated, global, ...
	EndpointMode string // vip or dnsrr
	Desired      int
	Running      int
	// ProbePort is the port of the task's /health; 0 means the service
	// did not opt in (or its label was invalid, see ProbeError).
	ProbePort  int
	ProbePath  string
	ProbeError string
	// Logical is the service this one is a version of: its goblog.service
	// label, else its name without the stack prefix. Tenant is its
	// goblog.tenant label, "" for a plain service; an invalid tenant label
	// leaves Tenant empty and says why in TenantError (such a service is
	// never taken for a plain one by callers that route by tenant: see
	// TenantError's users).
	Logical     string
	Tenant      string
	TenantError string
	Tasks       []Task
}

// Task is one task whose container is running.
type Task struct {
	ID           string
	Slot         int
	NodeID       string
	Node         string // the node's hostname (else its name, else its ID)
	State        string
	DesiredState string
	// The node's facts, as the swarm reports them.
	NodeStatus       string // ready, down, disconnected, unknown
	NodeAvailability string // active, pause, drain
	NodeAddress      string
	NodeRole         string // manager, worker
	// Address is the task's IP on the watched network, "" when it has none
	// (AddressError then says why).
	Address      string
	Network      string
	NetworkID    string
	AddressError string
	ContainerID  string
	Since        time.Time
	// Tenant is the tenant of the task's service (see Service.Tenant).
	Tenant string
}

// Draining reports a task that still runs although swarm wants it gone.
func (t Task) Draining() bool {
	return t.DesiredState != string(swarm.TaskStateRunning)
}

// Discovery reads Snapshots from the Engine API.
type Discovery struct {
	cfg Config
	api API
	log *slog.Logger

	mu        sync.Mutex
	ownNets   []string // names of own overlay networks, once known
	ownDone   bool     // own container looked up (found or definitely not)
	lastNets  string   // last logged network choice
	lastNotes string
}

// New returns a Discovery reading through api.
func New(cfg Config, api API) (*Discovery, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("swarm config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Discovery{cfg: cfg, api: api, log: log}, nil
}

// CallsPerRefresh is the number of Engine API calls one Refresh makes once
// the watcher's own networks are known: services, tasks, nodes, networks.
const CallsPerRefresh = 4

// Refresh lists services, running tasks, nodes and networks and joins them.
// On error it returns no snapshot: callers keep their last good one.
func (d *Discovery) Refresh(ctx context.Context) (Snapshot, error) {
	services, err := call(ctx, d.cfg.CallTimeout, func(ctx context.Context) ([]swarm.Service, error) {
		return d.api.ServiceList(ctx, swarm.ServiceListOptions{Status: true})
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("list services: %w", err)
	}
	// Desired running, and still running although swarm wants them gone
	// (draining): desired shutdown (replaced by an update) or remove
	// (scaled down).
	tf := filters.NewArgs(
		filters.Arg("desired-state", string(swarm.TaskStateRunning)),
		filters.Arg("desired-state", string(swarm.TaskStateShutdown)),
		filters.Arg("desired-state", string(swarm.TaskStateRemove)),
	)
	tasks, err := call(ctx, d.cfg.CallTimeout, func(ctx context.Context) ([]swarm.Task, error) {
		return d.api.TaskList(ctx, swarm.TaskListOptions{Filters: tf})
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("list tasks: %w", err)
	}
	nodes, err := call(ctx, d.cfg.CallTimeout, func(ctx context.Context) ([]swarm.Node, error) {
		return d.api.NodeList(ctx, swarm.NodeListOptions{})
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("list nodes: %w", err)
	}
	nets, err := call(ctx, d.cfg.CallTimeout, func(ctx context.Context) ([]network.Summary, error) {
		return d.api.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("driver", "overlay"))})
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("list networks: %w", err)
	}
	watched := d.watchedNetworks(ctx, nets)
	return build(services, tasks, nodes, watched), nil
}

// call runs f with its own deadline.
func call[T any](ctx context.Context, timeout time.Duration, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return f(ctx)
}

// netRef is a watched network.
type netRef struct{ id, name string }

// watchedNetworks picks the networks whose addresses count, in order of
// preference, and logs when the choice changes.
func (d *Discovery) watchedNetworks(ctx context.Context, nets []network.Summary) []netRef {
	byKey := map[string]network.Summary{}
	var overlays []network.Summary
	for _, n := range nets {
		if n.Driver != "" && n.Driver != "overlay" {
			continue
		}
		byKey[n.Name] = n
		byKey[n.ID] = n
		if !n.Ingress && n.Name != "ingress" {
			overlays = append(overlays, n)
		}
	}
	sort.Slice(overlays, func(i, j int) bool { return overlays[i].Name < overlays[j].Name })

	var (
		out  []netRef
		why  string
		want []string
	)
	switch {
	case len(d.cfg.Networks) > 0:
		want, why = d.cfg.Networks, "configured"
	default:
		if own := d.ownNetworks(ctx); len(own) > 0 {
			want, why = own, "shared with the watcher's own container"
		}
	}
	for _, w := range want {
		if n, ok := byKey[w]; ok && !n.Ingress {
			out = append(out, netRef{id: n.ID, name: n.Name})
		} else if !ok && len(d.cfg.Networks) > 0 {
			// Keep the name so tasks say which network they lack.
			out = append(out, netRef{name: w})
		}
	}
	if len(out) == 0 {
		if n, ok := byKey[DefaultNetwork]; ok {
			out, why = []netRef{{id: n.ID, name: n.Name}}, "fallback: the stack's network "+DefaultNetwork+" (own container's networks unknown)"
		} else if len(overlays) > 0 {
			out, why = []netRef{{id: overlays[0].ID, name: overlays[0].Name}}, "fallback: first overlay network that is not ingress (own container's networks unknown)"
		} else {
			why = "no overlay network found"
		}
	}
	names := make([]string, len(out))
	for i, n := range out {
		names[i] = n.name
	}
	d.mu.Lock()
	changed := strings.Join(names, ",") != d.lastNets || why != d.lastNotes
	d.lastNets, d.lastNotes = strings.Join(names, ","), why
	d.mu.Unlock()
	if changed {
		d.log.Info("watching networks", "networks", names, "why", why)
	}
	return out
}

// ownNetworks returns the overlay networks of the watcher's own container,
// found by inspecting the container named by the hostname (a container's
// hostname is its ID prefix unless set otherwise). It asks once; a transient
// API error is retried on the next refresh.
func (d *Discovery) ownNetworks(ctx context.Context) []string {
	d.mu.Lock()
	done, own := d.ownDone, d.ownNets
	d.mu.Unlock()
	if done {
		return own
	}
	if d.cfg.Hostname == "" {
		d.mu.Lock()
		d.ownDone = true
		d.mu.Unlock()
		return nil
	}
	c, err := call(ctx, d.cfg.CallTimeout, func(ctx context.Context) (container.InspectResponse, error) {
		return d.api.ContainerInspect(ctx, d.cfg.Hostname)
	})
	if err != nil {
		if !isNotFound(err) {
			d.log.Warn("cannot inspect own container, will retry", "hostname", d.cfg.Hostname, "err", err)
			return nil
		}
		d.log.Info("not running in a container of this engine", "hostname", d.cfg.Hostname)
		d.mu.Lock()
		d.ownDone = true
		d.mu.Unlock()
		return nil
	}
	var names []string
	if c.NetworkSettings != nil {
		for name, ep := range c.NetworkSettings.Networks {
			if name == "ingress" || ep == nil {
				continue
			}
			names = append(names, name)
		}
	}
	sort.Strings(names)
	d.mu.Lock()
	d.ownDone, d.ownNets = true, names
	d.mu.Unlock()
	return names
}

func isNotFound(err error) bool {
	// errdefs.IsNotFound without importing the deprecated package.
	var nf interface{ NotFound() }
	return errors.As(err, &nf) || client.IsErrNotFound(err)
}

// build joins the API answers into a Snapshot. It never fails: a task that
// cannot be addressed is kept with the reason.
func build(services []swarm.Service, tasks []swarm.Task, nodes []swarm.Node, watched []netRef) Snapshot {
	byNode := make(map[string]swarm.Node, len(nodes))
	// A task on a node the swarm reports down is lost: its state is the last
	// the manager heard, and swarm reschedules it elsewhere. It leaves the list.
	nodeDown := make(map[string]bool)
	for _, n := range nodes {
		if n.Status.State == swarm.NodeStateDown || n.Status.State == swarm.NodeStateDisconnected {
			nodeDown[n.ID] = true
		}
		byNode[n.ID] = n
	}
	byService := make(map[string][]Task)
	for _, t := range tasks {
		if t.Status.State != swarm.TaskStateRunning || nodeDown[t.NodeID] {
			continue
		}
		byService[t.ServiceID] = append(byService[t.ServiceID], toTask(t, byNode, watched))
	}
	snap := Snapshot{Services: make([]Service, 0, len(services))}
	for _, n := range watched {
		snap.Networks = append(snap.Networks, n.name)
	}
	for _, s := range services {
		svc := toService(s)
		svc.Tasks = byService[s.ID]
		for i := range svc.Tasks {
			svc.Tasks[i].Tenant = svc.Tenant
		}
		sort.Slice(svc.Tasks, func(i, j int) bool {
			a, b := svc.Tasks[i], svc.Tasks[j]
			if a.Slot != b.Slot {
				return a.Slot < b.Slot
			}
			if a.Node != b.Node {
				return a.Node < b.Node
			}
			return a.ID < b.ID
		})
		for _, t := range svc.Tasks {
			if !t.Draining() {
				svc.Running++
			}
		}
		snap.Services = append(snap.Services, svc)
	}
	sort.Slice(snap.Services, func(i, j int) bool { return snap.Services[i].Name < snap.Services[j].Name })
	return snap
}

func toService(s swarm.Service) Service {
	svc := Service{
		ID:           s.ID,
		Name:         s.Spec.Name,
		Labels:       map[string]string{},
		EndpointMode: string(swarm.ResolutionModeVIP),
	}
	// Container labels first, service labels win.
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		for k, v := range cs.Labels {
			svc.Labels[k] = v
		}
	}
	for k, v := range s.Spec.Labels {
		svc.Labels[k] = v
	}
	if s.Spec.EndpointSpec != nil && s.Spec.EndpointSpec.Mode != "" {
		svc.EndpointMode = string(s.Spec.EndpointSpec.Mode)
	}
	switch m := s.Spec.Mode; {
	case m.Replicated != nil:
		svc.Mode = "replicated"
		if m.Replicated.Replicas != nil {
			svc.Desired = int(*m.Replicated.Replicas)
		}
	case m.Global != nil:
		svc.Mode = "global"
	case m.ReplicatedJob != nil:
		svc.Mode = "replicated-job"
	case m.GlobalJob != nil:
		svc.Mode = "global-job"
	}
	if s.ServiceStatus != nil {
		svc.Desired = int(s.ServiceStatus.DesiredTasks)
	}
	port, path, err := ProbeTarget(svc.Labels)
	if err != nil {
		svc.ProbeError = err.Error()
	} else {
		svc.ProbePort, svc.ProbePath = port, path
	}
	svc.Logical, svc.Tenant, svc.TenantError = Tenancy(svc.Name, svc.Labels)
	return svc
}

// stackLabel names the stack a service was deployed in; its value and "_"
// prefix the service's name.
const stackLabel = "com.docker.stack.namespace"

// Tenancy reads a service's logical name and tenant from its labels (see
// package tenant). A label is a claim: a tenant that is not a valid tenant
// name, or a logical name that is not a plain name, is refused with the
// reason rather than trimmed into something else.
func Tenancy(name string, labels map[string]string) (logical, tenantName, problem string) {
	logical = name
	if ns := labels[stackLabel]; ns != "" {
		logical = strings.TrimPrefix(name, ns+"_")
	}
	if v, ok := labels[tenant.LabelService]; ok {
		if validLogical(v) {
			logical = v
		} else {
			problem = fmt.Sprintf("label %s=%.64q is not a service name", tenant.LabelService, v)
		}
	}
	if v, ok := labels[tenant.LabelTenant]; ok {
		if tenant.Valid(v) {
			tenantName = v
		} else {
			problem = fmt.Sprintf("label %s=%.64q is not a tenant (1-%d letters, digits, '-')", tenant.LabelTenant, v, tenant.MaxLen)
		}
	}
	return logical, tenantName, problem
}

// validLogical accepts what a swarm service name may be: 1-63 letters,
// digits, '-', '_' and '.'.
func validLogical(v string) bool {
	if len(v) == 0 || len(v) > 63 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// maxPathLen bounds the swarmwatcher.path label: it becomes part of a URL
// the watcher requests every probe interval.
const maxPathLen = 256

// ProbeTarget reads the probe labels of a service: port 0 and no error when
// it did not opt in. A label is a claim made by whoever deployed the
// service, so a port that is not 1…65535, or a path that is not a plain
// absolute path (no scheme, host, query, fragment, control characters or
// "..", at most 256 bytes), is an error: the service is then listed but not
// probed.
func ProbeTarget(labels map[string]string) (port int, path string, err error) {
	p, ok := labels[LabelPort]
	if !ok {
		return 0, "", nil
	}
	port, err = strconv.Atoi(strings.TrimSpace(p))
	if err != nil || port < 1 || port > 65535 {
		return 0, "", fmt.Errorf("label %s=%q is not a port number", LabelPort, p)
	}
	path = strings.TrimSpace(labels[LabelPath])
	if path == "" {
		return port, "/health", nil
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	if !validPath(path) {
		return 0, "", fmt.Errorf("label %s=%q is not a plain absolute path", LabelPath, labels[LabelPath])
	}
	return port, path, nil
}

func validPath(p string) bool {
	if len(p) > maxPathLen || strings.HasPrefix(p, "//") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return false
		}
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '%' || c == '\\' {
			return false
		}
	}
	return true
}

func toTask(t swarm.Task, byNode map[string]swarm.Node, watched []netRef) Task {
	n := byNode[t.NodeID]
	task := Task{
		ID:               t.ID,
		Slot:             t.Slot,
		NodeID:           t.NodeID,
		Node:             n.Description.Hostname,
		NodeStatus:       string(n.Status.State),
		NodeAvailability: string(n.Spec.Availability),
		NodeAddress:      n.Status.Addr,
		NodeRole:         string(n.Spec.Role),
		State:            string(t.Status.State),
		DesiredState:     string(t.DesiredState),
		Since:            t.Status.Timestamp,
	}
	if task.Node == "" {
		task.Node = n.Spec.Name
	}
	if task.Node == "" {
		task.Node = t.NodeID
	}
	if cs := t.Status.ContainerStatus; cs != nil {
		task.ContainerID = cs.ContainerID
	}
	var w netRef
	task.Address, w, task.AddressError = address(t.NetworksAttachments, watched)
	task.Network, task.NetworkID = w.name, w.id
	return task
}

// address picks the task's IP on the first watched network it is attached to.
func address(atts []swarm.NetworkAttachment, watched []netRef) (ip string, on netRef, reason string) {
	if len(watched) == 0 {
		return "", netRef{}, "no overlay network to take addresses from"
	}
	var empty []netRef // watched networks the task is on without a usable address
	for _, w := range watched {
		for _, a := range atts {
			if w.id == "" || a.Network.ID != w.id {
				continue
			}
			for _, cidr := range a.Addresses {
				if addr, err := ParseAddress(cidr); err == nil {
					return addr.String(), w, ""
				}
			}
			empty = append(empty, w)
		}
	}
	if len(empty) > 0 {
		names := make([]string, len(empty))
		for i, w := range empty {
			names[i] = w.name
		}
		return "", empty[0], "attached to " + strings.Join(names, ", ") + " but without a usable address"
	}
	var names []string
	for _, a := range atts {
		name := a.Network.Spec.Name
		if name == "" {
			name = a.Network.ID
		}
		names = append(names, name)
	}
	want := make([]string, len(watched))
	for i, w := range watched {
		want[i] = w.name
	}
	if len(names) == 0 {
		return "", netRef{}, "not attached to " + strings.Join(want, ", ") + " (no networks)"
	}
	return "", netRef{}, "not attached to " + strings.Join(want, ", ") + " (only " + strings.Join(names, ", ") + ")"
}

// ParseAddress reads one of a task's network attachment addresses, which the
// engine reports in CIDR form ("10.0.1.7/24"); a bare IP is accepted too.
// The engine's answer is a claim: only a unicast address a probe may dial
// (no loopback, unspecified, link-local, multicast or zoned address) counts.
func ParseAddress(cidr string) (netip.Addr, error) {
	var addr netip.Addr
	if p, err := netip.ParsePrefix(cidr); err == nil {
		addr = p.Addr()
	} else if a, err2 := netip.ParseAddr(cidr); err2 == nil {
		addr = a
	} else {
		return netip.Addr{}, fmt.Errorf("address %q: not an IP or CIDR", cidr)
	}
	addr = addr.Unmap()
	switch {
	case addr.Zone() != "":
		return netip.Addr{}, fmt.Errorf("address %q: zoned", cidr)
	case addr.IsLoopback(), addr.IsUnspecified(), addr.IsLinkLocalUnicast(), addr.IsMulticast(),
		!addr.IsGlobalUnicast():
		return netip.Addr{}, fmt.Errorf("address %q: not a unicast address a task can have", cidr)
	}
	return addr, nil
}

// Hostname returns os.Hostname or "" on error.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}
