package api

// Label names of GET /api/sd. Each target carries the watcher's own
// __meta_swarmwatcher_* labels and, for the same facts, the names Prometheus'
// own dockerswarm_sd (role tasks) gives them, so relabel rules written for
// one work with the other. Service labels appear only under the allow-listed
// prefixes the watcher is configured with (default "swarmwatcher." and
// "goblog."), their names sanitised as Prometheus does (every character
// outside [a-zA-Z0-9_] becomes "_").
const (
	LabelService      = "__meta_swarmwatcher_service"
	LabelServiceID    = "__meta_swarmwatcher_service_id"
	LabelEndpointMode = "__meta_swarmwatcher_endpoint_mode"
	LabelTaskID       = "__meta_swarmwatcher_task_id"
	LabelTaskSlot     = "__meta_swarmwatcher_task_slot"
	LabelTaskState    = "__meta_swarmwatcher_task_state"
	LabelDesiredState = "__meta_swarmwatcher_desired_state"
	LabelNode         = "__meta_swarmwatcher_node"
	LabelNetwork      = "__meta_swarmwatcher_network"
	// LabelHealth is the task's Health: keep only "passing" to scrape
	// healthy tasks.
	LabelHealth = "__meta_swarmwatcher_health"
	// LabelLogical is the logical service (see Service.Logical); LabelTenant
	// the task's tenant, present only for a tenant's task.
	LabelLogical = "__meta_swarmwatcher_logical_service"
	LabelTenant  = "__meta_swarmwatcher_tenant"
	// LabelServiceLabelPrefix + sanitised name: an allow-listed service label.
	LabelServiceLabelPrefix = "__meta_swarmwatcher_service_label_"

	DockerswarmTaskID           = "__meta_dockerswarm_task_id"
	DockerswarmTaskSlot         = "__meta_dockerswarm_task_slot"
	DockerswarmTaskState        = "__meta_dockerswarm_task_state"
	DockerswarmTaskDesiredState = "__meta_dockerswarm_task_desired_state"
	DockerswarmTaskContainerID  = "__meta_dockerswarm_task_container_id"
	DockerswarmServiceID        = "__meta_dockerswarm_service_id"
	DockerswarmServiceName      = "__meta_dockerswarm_service_name"
	DockerswarmServiceMode      = "__meta_dockerswarm_service_mode"
	// DockerswarmServiceLabelPrefix + sanitised name: an allow-listed service label.
	DockerswarmServiceLabelPrefix = "__meta_dockerswarm_service_label_"
	DockerswarmNodeID             = "__meta_dockerswarm_node_id"
	DockerswarmNodeHostname       = "__meta_dockerswarm_node_hostname"
	DockerswarmNodeAddress        = "__meta_dockerswarm_node_address"
	DockerswarmNodeAvailability   = "__meta_dockerswarm_node_availability"
	DockerswarmNodeStatus         = "__meta_dockerswarm_node_status"
	DockerswarmNodeRole           = "__meta_dockerswarm_node_role"
	DockerswarmNetworkID          = "__meta_dockerswarm_network_id"
	DockerswarmNetworkName        = "__meta_dockerswarm_network_name"
)
