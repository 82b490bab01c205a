// Package sd is a go-kit service-discovery backend for Docker Swarm, fed by
// the swarmwatcher.
//
// go-kit ships Instancers for Consul, etcd, ZooKeeper, Eureka and DNS SRV but
// none for Docker Swarm. An [Instancer] from this package takes the
// swarmwatcher's snapshot of one swarm service, follows its event stream
// (GET /api/events) and publishes go-kit [github.com/go-kit/kit/sd.Event]s
// whose instances are "ip:port" of that service's passing tasks only:
// starting, warning, critical, draining and unknown tasks are left out.
//
// Wiring it into go-kit's usual chain looks like this:
//
//	inst, err := sd.NewInstancer(sd.Config{
//		WatcherURL: "http://swarmwatcher:6969",
//		Service:    "goblog_accountservice",
//	})
//	// handle err
//	defer inst.Stop()
//	endpointer := kitsd.NewEndpointer(inst, factory, logger)
//	balancer := lb.NewRoundRobin(endpointer)
//	call := lb.Retry(2, time.Second, balancer)
//
// When the feed is lost (watcher gone, stream cut, watcher reporting its
// Docker data stale, or a freshly started watcher that has not probed any
// task of the service yet) the Instancer keeps the last good set: it publishes an
// Event carrying both that set and the error, never an empty set, then
// reconnects with backoff and re-reads the snapshot. go-kit's Endpointer
// keeps serving its last endpoints on such an event.
//
// Tenants: the Instancer's own set holds the service's tasks only, never
// those of a tenant's version of it (a service labelled goblog.tenant=<name>
// and goblog.service=<the same logical name>); [Instancer.Tenant] is a go-kit
// Instancer of one tenant's passing tasks, with the same last-good-set rule.
// The labels are read from the watcher's snapshot, which the Instancer reads
// again whenever a service is created (a label changed on an existing
// service is seen at the next reconnect).
//
// Most callers want all of it at once: [NewDiscovery] returns an
// http.RoundTripper that owns an Instancer and a [Transport] (round robin,
// one retry on another task for a request lbclient.Replayable allows) and
// ends both with one Close; the edge and accountservice use it. It routes a
// request by its X-Goblog-Tenant header to that tenant's tasks (the plain
// ones when the tenant has none) and says what it does in [Discovery.Stats]
// and, for Prometheus, [NewCollector]: the requests by outcome, and
// whether each set is the last good one kept after a failure.
//
// The JSON it reads is declared in package
// github.com/goblog/goblog/swarmwatcher/api, which the watcher writes.
//
// [Subset] implements the deterministic subsetting of Google's SRE book
// ("Load Balancing in the Datacenter"); set Config.Subset to apply it.
package sd
