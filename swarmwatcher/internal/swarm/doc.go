// Package swarm reads the state of a Docker Swarm through the Engine API:
// services, their running tasks, the nodes they run on and each task's
// address on the watched overlay network(s).
//
// One refresh costs a constant number of API calls whatever the task count
// (services, tasks, nodes, networks; no per-task inspect). Watch follows the
// engine's event stream so that callers can re-list promptly: swarm emits no
// task events (moby#37403), so service, node and container events stand in.
package swarm
