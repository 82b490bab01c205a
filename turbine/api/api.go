// Package api holds turbine's wire shapes: the JSON of GET /api/instances and GET /api/stats.
// The server fills them and every client (the e2e tests, a dashboard) decodes them from here,
// so each shape is declared once.
package api

import (
	"time"

	"github.com/goblog/goblog/discoverytoken"
)

// Paths of turbine's HTTP API.
const (
	PathStream    = "/turbine.stream" // SSE aggregate; ?cluster= narrows it (see QueryCluster)
	PathInstances = "/api/instances"
	PathStats     = "/api/stats"
	PathHealth    = "/health" // readiness: 200 only while subscribed to the broker
	PathLive      = "/-/live" // liveness: 200 while the process serves HTTP
	// QueryCluster is the query parameter (on / and PathStream) selecting the instances to
	// aggregate: "<service>" every instance of the service (its plain tasks and every
	// tenant's), "<service>@<tenant>" only that tenant's, "<service>@" only the plain ones,
	// "@<tenant>" every service's instances of that tenant; absent or "" every instance.
	// A tenant is the goblog.tenant label of the instance's swarm service, as the
	// swarmwatcher reports it.
	QueryCluster = "cluster"
	// ClusterTenantSep separates service and tenant in QueryCluster.
	ClusterTenantSep = "@"
	DefaultPort      = 8282
)

// Instance is one element of GET /api/instances: an instance a discovery token announced.
type Instance struct {
	InstanceID string    `json:"instanceId"`
	Service    string    `json:"service"`
	Address    string    `json:"address"`
	Port       int       `json:"port"`
	State      string    `json:"state"`
	LastSeen   time.Time `json:"lastSeen"`
	// StreamConnected is true while turbine reads the instance's metrics stream.
	StreamConnected bool `json:"streamConnected"`
	// Verified is true when the swarmwatcher last reported the address as a running task of
	// the service (of its plain swarm service or a tenant's). Turbine never dials an
	// unverified instance.
	Verified bool `json:"verified"`
	// Tenant is the tenant of the verified task's swarm service (its goblog.tenant label, as
	// the swarmwatcher reports it, never as the token claims), "" for a plain one.
	Tenant string `json:"tenant,omitempty"`
	// Protected is true while the registry keeps the instance although it fell silent
	// (self-preservation), when the registry reports it.
	Protected bool `json:"protected"`
	// Dials counts the connection attempts to the instance's metrics stream.
	Dials uint64 `json:"dials"`
}

// Stats is GET /api/stats: turbine's counters. Counters only grow; compare them before and
// after, never as absolute values.
type Stats struct {
	Consumer       discoverytoken.ConsumerStats `json:"consumer"`
	Registry       discoverytoken.RegistryStats `json:"registry"`
	LiveInstances  int                          `json:"liveInstances"`
	Protected      int                          `json:"protected"`
	AggregatedKeys int                          `json:"aggregatedKeys"`
	// BadStreamLines counts data lines of instance streams that were not valid samples.
	BadStreamLines uint64       `json:"badStreamLines"`
	Streams        StreamStats  `json:"streams"`
	Watcher        WatcherStats `json:"watcher"`
	Clients        ClientStats  `json:"clients"`
}

// StreamStats counts what turbine did with the instances' metrics streams, and how often
// each bound was hit.
type StreamStats struct {
	Active    int    `json:"active"`    // streams running (connected or reconnecting)
	Connected int    `json:"connected"` // streams connected now
	Dials     uint64 `json:"dials"`     // connection attempts
	// Unverified counts each time an instance was refused a dial because the watcher did
	// not report its address as a running task of its service.
	Unverified uint64 `json:"unverified"`
	// WatcherDown counts dials held back because the watcher could not be reached.
	WatcherDown uint64 `json:"watcherDown"`
	// CappedStreams counts instances refused a stream because MaxStreams were running.
	CappedStreams uint64 `json:"cappedStreams"`
	// DialWaits counts dials that waited for one of the MaxConcurrentDials slots.
	DialWaits uint64 `json:"dialWaits"`
	// Cut counts streams turbine closed for breaking a bound, by bound.
	CutLineTooLong  uint64 `json:"cutLineTooLong"`
	CutTooManyKeys  uint64 `json:"cutTooManyKeys"`
	CutTooManyBytes uint64 `json:"cutTooManyBytes"`
}

// WatcherStats says how the swarmwatcher answered turbine's verification queries.
type WatcherStats struct {
	Queries   uint64 `json:"queries"`   // requests sent (cache misses)
	Errors    uint64 `json:"errors"`    // requests that failed
	CacheHits uint64 `json:"cacheHits"` // answers served from the short cache
	CacheFull uint64 `json:"cacheFull"` // times the cache hit its size cap and was flushed
	// BadTenants counts running tasks the watcher reported with a tenant that is no valid
	// tenant name; they stay unverified.
	BadTenants  uint64    `json:"badTenants"`
	LastError   string    `json:"lastError,omitempty"`
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
}

// ClientStats counts /turbine.stream clients and the shared aggregation.
type ClientStats struct {
	Streaming      int    `json:"streaming"`      // /turbine.stream clients now
	Refused        uint64 `json:"refused"`        // clients refused beyond MaxClients (503)
	Aggregations   uint64 `json:"aggregations"`   // aggregates computed (once per tick and cluster)
	ClustersCapped uint64 `json:"clustersCapped"` // cluster aggregates refused beyond MaxClusters
}
