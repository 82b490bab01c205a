package sd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kitsd "github.com/go-kit/kit/sd"

	"github.com/goblog/goblog/internal/backoff"
	"github.com/goblog/goblog/internal/sse"
	"github.com/goblog/goblog/swarmwatcher/api"
)

// Errors an Instancer reports in sd.Event.Err (wrapped); the event still
// carries the last good set of instances.
var (
	// ErrStale means the watcher says its Docker data is stale, or every
	// task of the service is in health "unknown".
	ErrStale = errors.New("swarmwatcher data is stale")
	// ErrServiceNotFound means the watcher does not list the service.
	ErrServiceNotFound = errors.New("service not listed by the swarmwatcher")
	// ErrNoVerdict means every task of the service is still "starting" (or
	// "unknown"): the watcher has not probed any yet, as right after it
	// starts. That is no news about the tasks, so the last set is kept.
	ErrNoVerdict = errors.New("no task has a health verdict yet")
	// ErrTenantLabel means the service's goblog.tenant or goblog.service
	// label was refused by the watcher: such a service is never taken for
	// a plain one.
	ErrTenantLabel = errors.New("service's tenant label refused")
)

// errResync ends a connection to re-read the snapshot: a service appeared
// whose labels (tenant, logical name) only a snapshot carries.
var errResync = errors.New("a service was created: re-reading the snapshot")

// Config configures an Instancer. Zero values take the documented defaults.
type Config struct {
	// WatcherURL is the swarmwatcher's base URL, e.g. http://swarmwatcher:6969.
	WatcherURL string
	// Service is the swarm service name, e.g. goblog_accountservice. When no
	// service has exactly this name, the only service named
	// "<stack>_<Service>" is used, so "accountservice" works too.
	Service string
	// Port, when > 0, replaces the port the watcher reports for each task.
	Port int
	// Subset, when set, limits the instances to this client's deterministic
	// subset of the passing tasks (see Subset).
	Subset *SubsetConfig

	// Client makes the stream request. It must have no Timeout (the stream
	// is long-lived; ConnectTimeout and IdleTimeout bound it instead).
	// Default: a client with a 5 s dial timeout.
	Client *http.Client
	// ConnectTimeout bounds connecting and receiving the snapshot. Default 5 s.
	ConnectTimeout time.Duration
	// IdleTimeout: a feed that sends nothing, not even its 15 s keepalive,
	// for this long is lost. Default 45 s.
	IdleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay (the project's
	// backoff: doubling per failed attempt, jittered down by up to half).
	// Defaults 250 ms, 10 s.
	MinBackoff, MaxBackoff time.Duration
	// Sleep waits d or until ctx ends (then it returns ctx.Err()). Tests
	// inject it; default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives feed errors and skipped events; nil discards.
	Logger *slog.Logger
}

// SubsetConfig selects a deterministic subset: this client's ID and the
// number of instances it should use.
type SubsetConfig struct {
	ClientID int
	Size     int
}

func (c *Config) setDefaults() (ownClient bool) {
	if c.Client == nil {
		ownClient = true
		c.Client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConns:        2,
		}}
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 45 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Sleep == nil {
		c.Sleep = backoff.Sleep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return ownClient
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	u, err := url.Parse(c.WatcherURL)
	if err != nil {
		return fmt.Errorf("watcher url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("watcher url %q: want http(s)://host[:port]", c.WatcherURL)
	}
	if strings.TrimSpace(c.Service) == "" {
		return errors.New("service name is empty")
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("port %d out of range", c.Port)
	}
	if c.Subset != nil && (c.Subset.Size < 1 || c.Subset.ClientID < 0) {
		return fmt.Errorf("subset: want size >= 1 and client id >= 0, got %d and %d", c.Subset.Size, c.Subset.ClientID)
	}
	if c.Client != nil && c.Client.Timeout != 0 {
		return errors.New("http client: must have no Timeout, the event stream is long-lived")
	}
	return nil
}

// Instancer is a go-kit sd.Instancer for one swarm service, fed by the
// swarmwatcher's event stream. Create it with NewInstancer; end it with Stop.
type Instancer struct {
	cfg     Config
	log     *slog.Logger
	eventsU string

	mu sync.Mutex
	// pools are the published sets: "" the service's own (plain) tasks,
	// every other key a tenant's (see Tenant).
	pools map[string]*pool

	malformed, losses, resyncs atomic.Uint64
	overCap                    atomic.Int64 // tenants left out at the last publish
	// model of the watcher's view; owned by the run goroutine.
	services map[string]map[string]api.Task
	meta     map[string]serviceMeta
	stale    *api.Status

	ready    chan struct{}
	readyOne sync.Once
	quit     <-chan struct{} // closed by Stop
	cancel   context.CancelFunc
	done     chan struct{}
	stopOne  sync.Once
	// closeIdle releases the connections of a client the Instancer made.
	closeIdle func()
}

var _ kitsd.Instancer = (*Instancer)(nil)

// NewInstancer validates cfg, starts following the watcher and returns once
// the first result (a set of instances or an error) is known, which takes at
// most cfg.ConnectTimeout. The Instancer keeps trying in the background
// until Stop.
func NewInstancer(cfg Config) (*Instancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("swarmwatcher instancer: %w", err)
	}
	ownClient := cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	in := &Instancer{
		cfg:     cfg,
		log:     cfg.Logger.With("watcher", cfg.WatcherURL, "service", cfg.Service),
		eventsU: strings.TrimRight(cfg.WatcherURL, "/") + "/api/events",
		pools:   map[string]*pool{"": newPool()},
		ready:   make(chan struct{}),
		quit:    ctx.Done(),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	if ownClient {
		in.closeIdle = cfg.Client.CloseIdleConnections
	}
	go in.run(ctx)
	select {
	case <-in.ready:
	case <-in.done:
	}
	return in, nil
}

// Register implements sd.Instancer: ch receives the current state at once
// and every change after it. Sends block until ch is read (as with go-kit's
// own Instancers) or the Instancer stops. The instances are the service's
// own tasks: never a tenant's (see Tenant).
func (in *Instancer) Register(ch chan<- kitsd.Event) { in.register("", ch) }

// Deregister implements sd.Instancer.
func (in *Instancer) Deregister(ch chan<- kitsd.Event) { in.deregister("", ch) }

func (in *Instancer) register(tenant string, ch chan<- kitsd.Event) {
	in.mu.Lock()
	defer in.mu.Unlock()
	p := in.pools[tenant]
	if p == nil { // a tenant without a service (yet): its set is empty
		p = newPool()
		p.present = false
		in.pools[tenant] = p
	}
	p.reg[ch] = struct{}{}
	in.send(ch, copyEvent(p.state))
}

func (in *Instancer) deregister(tenant string, ch chan<- kitsd.Event) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if p := in.pools[tenant]; p != nil {
		delete(p.reg, ch)
	}
}

// Stop implements sd.Instancer: it ends the feed and every goroutine the
// Instancer started, and returns when they are gone. Safe to call twice.
func (in *Instancer) Stop() {
	in.stopOne.Do(func() {
		in.cancel()
		<-in.done
		if in.closeIdle != nil {
			in.closeIdle()
		}
	})
}

// State returns the last published event: instances (the last good set
// while Err is set) and the current error, if any.
func (in *Instancer) State() kitsd.Event { return in.stateOf("") }

func (in *Instancer) stateOf(tenant string) kitsd.Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	if p := in.pools[tenant]; p != nil {
		return copyEvent(p.state)
	}
	return kitsd.Event{}
}

// Malformed returns how many events were skipped because their data could
// not be read.
func (in *Instancer) Malformed() uint64 { return in.malformed.Load() }

func (in *Instancer) send(ch chan<- kitsd.Event, ev kitsd.Event) {
	select {
	case ch <- ev:
	case <-in.quit:
	}
}

// update publishes ev on the tenant's pool ("" the plain one) unless it
// equals the pool's current state. An event with an error carries the
// pool's last good set instead of ev's instances: the set is never emptied
// by a failure.
func (in *Instancer) update(tenant string, ev kitsd.Event) {
	sort.Strings(ev.Instances)
	in.mu.Lock()
	defer in.mu.Unlock()
	p := in.pools[tenant]
	if p == nil {
		p = newPool()
		in.pools[tenant] = p
	}
	if ev.Err != nil {
		ev.Instances = nil
		if len(p.lastGood) > 0 {
			ev.Instances = append([]string(nil), p.lastGood...)
		}
	}
	if sameEvent(p.state, ev) {
		return
	}
	p.state = ev
	if ev.Err == nil {
		p.lastGood = append([]string(nil), ev.Instances...)
	}
	for ch := range p.reg {
		in.send(ch, copyEvent(ev))
	}
}

// markReady tells NewInstancer that the first result is known: called once
// every set of a result (the plain one and the tenants') is published.
func (in *Instancer) markReady() { in.readyOne.Do(func() { close(in.ready) }) }

// fail publishes err on every pool, each with its last good set.
func (in *Instancer) fail(err error) {
	defer in.markReady()
	in.mu.Lock()
	names := make([]string, 0, len(in.pools))
	for name := range in.pools {
		names = append(names, name)
	}
	in.mu.Unlock()
	for _, name := range names {
		in.update(name, kitsd.Event{Err: err})
	}
}

func sameEvent(a, b kitsd.Event) bool {
	if (a.Err == nil) != (b.Err == nil) || (a.Err != nil && a.Err.Error() != b.Err.Error()) {
		return false
	}
	if len(a.Instances) == 0 && len(b.Instances) == 0 {
		return true
	}
	return reflect.DeepEqual(a.Instances, b.Instances)
}

func copyEvent(e kitsd.Event) kitsd.Event {
	if e.Instances != nil {
		e.Instances = append([]string(nil), e.Instances...)
	}
	return e
}

func (in *Instancer) run(ctx context.Context) {
	defer close(in.done)
	b := &backoff.Backoff{Min: in.cfg.MinBackoff, Max: in.cfg.MaxBackoff, Sleep: in.cfg.Sleep}
	for {
		gotSnapshot, err := in.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if gotSnapshot {
			b.Reset()
		}
		if errors.Is(err, errResync) {
			// Not a loss: the published sets stay as they are (no error) while
			// the snapshot is read again, after the shortest backoff.
			n := in.resyncs.Add(1)
			in.log.Info("re-reading the watcher's snapshot", "reason", err, "resyncs_total", n)
			if !b.Wait(ctx) {
				return
			}
			continue
		}
		in.losses.Add(1)
		err = fmt.Errorf("swarmwatcher feed: %w", err)
		in.log.Warn("discovery feed lost, keeping the last good set", "err", err, "retry", b.Attempt())
		in.fail(err)
		if !b.Wait(ctx) {
			return
		}
	}
}

// follow reads one connection of the event stream until it ends. It reports
// whether a snapshot was applied, and why the feed ended.
func (in *Instancer) follow(parent context.Context) (gotSnapshot bool, err error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	// The watchdog cancels the request when the watcher goes quiet: it
	// allows ConnectTimeout until the snapshot, then IdleTimeout per line.
	var timedOut atomic.Bool
	watchdog := time.AfterFunc(in.cfg.ConnectTimeout, func() { timedOut.Store(true); cancel() })
	defer watchdog.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.eventsU, nil)
	if err != nil {
		return false, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := in.cfg.Client.Do(req)
	if err != nil {
		if timedOut.Load() {
			return false, fmt.Errorf("connect: no answer within %s", in.cfg.ConnectTimeout)
		}
		return false, fmt.Errorf("connect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: status %s", in.eventsU, resp.Status)
	}

	in.services, in.meta, in.stale = nil, nil, nil
	sc := sse.NewReader(resp.Body, maxLine)
	timeout := in.cfg.ConnectTimeout // until the snapshot, then IdleTimeout
	for {
		ev, err := sc.Next(func() { watchdog.Reset(timeout) })
		if err != nil {
			if timedOut.Load() {
				return gotSnapshot, fmt.Errorf("stream: nothing received for %s", timeout)
			}
			return gotSnapshot, fmt.Errorf("stream: %w", err)
		}
		if err := in.apply(ev, &gotSnapshot); err != nil {
			return gotSnapshot, err
		}
		if gotSnapshot && timeout != in.cfg.IdleTimeout {
			timeout = in.cfg.IdleTimeout
			watchdog.Reset(timeout)
		}
	}
}

// apply folds one stream event into the model and publishes the result. Only
// an unreadable snapshot ends the connection; other bad events are skipped.
func (in *Instancer) apply(ev sse.Event, gotSnapshot *bool) error {
	switch ev.Name {
	case api.EventSnapshot:
		var list []api.Service
		if err := json.Unmarshal(ev.Data, &list); err != nil {
			in.malformed.Add(1)
			return fmt.Errorf("unreadable snapshot: %w", err)
		}
		in.services = make(map[string]map[string]api.Task, len(list))
		in.meta = make(map[string]serviceMeta, len(list))
		for _, s := range list {
			tasks := make(map[string]api.Task, len(s.Tasks))
			for _, t := range s.Tasks {
				tasks[t.ID] = t
			}
			in.services[s.Name] = tasks
			in.meta[s.Name] = serviceMeta{logical: s.Logical, tenant: s.Tenant, refused: s.TenantError != ""}
		}
		*gotSnapshot = true
	case api.EventStatus:
		var st api.Status
		if err := json.Unmarshal(ev.Data, &st); err != nil {
			in.skip(ev, err)
			return nil
		}
		in.stale = nil
		if st.Stale {
			in.stale = &st
		}
	case string(api.TaskAdded), string(api.TaskRemoved), string(api.HealthChanged), string(api.ServiceCreated), string(api.ServiceRemoved):
		typ := api.EventType(ev.Name)
		var c api.Change
		if err := json.Unmarshal(ev.Data, &c); err != nil {
			in.skip(ev, err)
			return nil
		}
		taskEvent := typ == api.TaskAdded || typ == api.TaskRemoved || typ == api.HealthChanged
		if c.Service == "" || (taskEvent && (c.Task == nil || c.Task.ID == "")) {
			in.skip(ev, errors.New("missing service or task"))
			return nil
		}
		if !*gotSnapshot {
			return nil // nothing to apply it to; the snapshot comes first
		}
		if typ == api.ServiceCreated {
			return errResync // its tenant and logical name are in the snapshot only
		}
		in.applyChange(typ, c)
	default:
		return nil // keepalives, ids and unknown event types
	}
	if *gotSnapshot {
		in.publish()
	}
	return nil
}

func (in *Instancer) skip(ev sse.Event, err error) {
	n := in.malformed.Add(1)
	in.log.Warn("skipped a malformed event", "event", ev.Name, "id", ev.ID, "err", err, "skipped_total", n)
}

func (in *Instancer) applyChange(typ api.EventType, c api.Change) {
	tasks := in.services[c.Service]
	switch typ {
	case api.ServiceRemoved:
		delete(in.services, c.Service)
		delete(in.meta, c.Service)
		return
	case api.ServiceCreated:
		if tasks == nil {
			in.services[c.Service] = map[string]api.Task{}
		}
		return
	}
	if tasks == nil {
		if len(in.services) >= maxServices {
			in.skip(sse.Event{Name: string(typ)}, fmt.Errorf("more than %d services", maxServices))
			return
		}
		tasks = map[string]api.Task{}
		in.services[c.Service] = tasks
	}
	if typ == api.TaskRemoved {
		delete(tasks, c.Task.ID)
		return
	}
	if _, known := tasks[c.Task.ID]; !known && len(tasks) >= maxTasks {
		in.skip(sse.Event{Name: string(typ)}, fmt.Errorf("more than %d tasks in %s", maxTasks, c.Service))
		return
	}
	tasks[c.Task.ID] = *c.Task
}

// publish derives the sets of the service and of its tenants from the
// model.
func (in *Instancer) publish() {
	if in.stale != nil {
		in.fail(fmt.Errorf("%w: %s (since %s)", ErrStale, in.stale.Error, in.stale.Since))
		return
	}
	name, tasks, ok := in.lookup()
	if !ok {
		in.fail(fmt.Errorf("%w: %s", ErrServiceNotFound, in.cfg.Service))
		return
	}
	own := in.meta[name]
	if own.refused {
		in.fail(fmt.Errorf("%w: %s (see the watcher's tenantError)", ErrTenantLabel, name))
		return
	}
	instances, err := in.derive(tasks)
	in.update("", kitsd.Event{Instances: instances, Err: err})
	in.publishTenants(name, own)
	in.markReady()
}

// derive returns the instances of a set of tasks: "ip:port" of the passing
// ones, or an error when the tasks say nothing yet (all unknown or starting).
func (in *Instancer) derive(tasks map[string]api.Task) ([]string, error) {
	instances := make([]string, 0, len(tasks))
	unknown, starting := 0, 0
	for _, t := range tasks {
		switch t.Health {
		case api.HealthUnknown:
			unknown++
		case api.HealthStarting:
			starting++
		}
		if t.Health != api.HealthPassing || t.Address == "" {
			continue
		}
		port := t.Port
		if in.cfg.Port > 0 {
			port = in.cfg.Port
		}
		if port <= 0 || port > 65535 {
			continue
		}
		if _, err := netip.ParseAddr(t.Address); err != nil {
			continue // the watcher reports IPs; anything else is not dialled
		}
		instances = append(instances, net.JoinHostPort(t.Address, strconv.Itoa(port)))
	}
	if len(tasks) > 0 && unknown == len(tasks) {
		return nil, fmt.Errorf("%w: every task of %s is in health unknown", ErrStale, in.cfg.Service)
	}
	if len(tasks) > 0 && unknown+starting == len(tasks) {
		return nil, fmt.Errorf("%w: %s", ErrNoVerdict, in.cfg.Service)
	}
	sort.Strings(instances)
	if s := in.cfg.Subset; s != nil {
		instances = Subset(instances, s.ClientID, s.Size)
	}
	return instances, nil
}

// lookup finds the service by its exact name, else by the only
// "<stack>_<name>" match.
func (in *Instancer) lookup() (string, map[string]api.Task, bool) {
	if t, ok := in.services[in.cfg.Service]; ok {
		return in.cfg.Service, t, true
	}
	var found map[string]api.Task
	var foundName string
	n := 0
	for name, t := range in.services {
		if strings.HasSuffix(name, "_"+in.cfg.Service) {
			found, foundName, n = t, name, n+1
		}
	}
	return foundName, found, n == 1
}

// maxLine bounds one line of the event stream; the snapshot of a large swarm
// is the longest line.
const maxLine = 8 << 20

// maxServices and maxTasks bound the model built from the stream's changes
// (a snapshot is bounded by maxLine already): the watcher's word is a claim.
const (
	maxServices = 10000
	maxTasks    = 10000
)
