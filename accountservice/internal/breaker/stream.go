package breaker

import (
	"encoding/json"
)

// The Hystrix stream's two events, field for field as hystrix-go (and Netflix Hystrix before
// it) sends them: turbine and the Hystrix dashboard read these names.

// CommandSample is the "HystrixCommand" event: the circuit's health, counts over the 10 s
// window, latency percentiles over the last minute (ms) and its settings.
type CommandSample struct {
	Type           string `json:"type"`
	Name           string `json:"name"`
	Group          string `json:"group"`
	Time           int64  `json:"currentTime"`
	ReportingHosts uint32 `json:"reportingHosts"`

	RequestCount       uint32 `json:"requestCount"`
	ErrorCount         uint32 `json:"errorCount"`
	ErrorPct           uint32 `json:"errorPercentage"`
	CircuitBreakerOpen bool   `json:"isCircuitBreakerOpen"`

	RollingCountCollapsedRequests  uint32 `json:"rollingCountCollapsedRequests"`
	RollingCountExceptionsThrown   uint32 `json:"rollingCountExceptionsThrown"`
	RollingCountFailure            uint32 `json:"rollingCountFailure"`
	RollingCountFallbackFailure    uint32 `json:"rollingCountFallbackFailure"`
	RollingCountFallbackRejection  uint32 `json:"rollingCountFallbackRejection"`
	RollingCountFallbackSuccess    uint32 `json:"rollingCountFallbackSuccess"`
	RollingCountResponsesFromCache uint32 `json:"rollingCountResponsesFromCache"`
	RollingCountSemaphoreRejected  uint32 `json:"rollingCountSemaphoreRejected"`
	RollingCountShortCircuited     uint32 `json:"rollingCountShortCircuited"`
	RollingCountSuccess            uint32 `json:"rollingCountSuccess"`
	RollingCountThreadPoolRejected uint32 `json:"rollingCountThreadPoolRejected"`
	RollingCountTimeout            uint32 `json:"rollingCountTimeout"`

	CurrentConcurrentExecutionCount uint32 `json:"currentConcurrentExecutionCount"`

	LatencyExecuteMean uint32        `json:"latencyExecute_mean"`
	LatencyExecute     LatencySample `json:"latencyExecute"`
	LatencyTotalMean   uint32        `json:"latencyTotal_mean"`
	LatencyTotal       LatencySample `json:"latencyTotal"`

	CircuitBreakerRequestVolumeThreshold             uint32 `json:"propertyValue_circuitBreakerRequestVolumeThreshold"`
	CircuitBreakerSleepWindow                        uint32 `json:"propertyValue_circuitBreakerSleepWindowInMilliseconds"`
	CircuitBreakerErrorThresholdPercent              uint32 `json:"propertyValue_circuitBreakerErrorThresholdPercentage"`
	CircuitBreakerForceOpen                          bool   `json:"propertyValue_circuitBreakerForceOpen"`
	CircuitBreakerForceClosed                        bool   `json:"propertyValue_circuitBreakerForceClosed"`
	CircuitBreakerEnabled                            bool   `json:"propertyValue_circuitBreakerEnabled"`
	ExecutionIsolationStrategy                       string `json:"propertyValue_executionIsolationStrategy"`
	ExecutionIsolationThreadTimeout                  uint32 `json:"propertyValue_executionIsolationThreadTimeoutInMilliseconds"`
	ExecutionIsolationThreadInterruptOnTimeout       bool   `json:"propertyValue_executionIsolationThreadInterruptOnTimeout"`
	ExecutionIsolationThreadPoolKeyOverride          string `json:"propertyValue_executionIsolationThreadPoolKeyOverride"`
	ExecutionIsolationSemaphoreMaxConcurrentRequests uint32 `json:"propertyValue_executionIsolationSemaphoreMaxConcurrentRequests"`
	FallbackIsolationSemaphoreMaxConcurrentRequests  uint32 `json:"propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests"`
	RollingStatsWindow                               uint32 `json:"propertyValue_metricsRollingStatisticalWindowInMilliseconds"`
	RequestCacheEnabled                              bool   `json:"propertyValue_requestCacheEnabled"`
	RequestLogEnabled                                bool   `json:"propertyValue_requestLogEnabled"`
}

// LatencySample is a latency distribution in milliseconds, by percentile.
type LatencySample struct {
	P0   uint32 `json:"0"`
	P25  uint32 `json:"25"`
	P50  uint32 `json:"50"`
	P75  uint32 `json:"75"`
	P90  uint32 `json:"90"`
	P95  uint32 `json:"95"`
	P99  uint32 `json:"99"`
	P995 uint32 `json:"99.5"`
	P100 uint32 `json:"100"`
}

// ThreadPoolSample is the "HystrixThreadPool" event. The quote call runs on the caller's
// goroutine; the pool is its concurrency bound, reported as hystrix-go reports its own.
type ThreadPoolSample struct {
	Type           string `json:"type"`
	Name           string `json:"name"`
	ReportingHosts uint32 `json:"reportingHosts"`

	CurrentActiveCount        uint32 `json:"currentActiveCount"`
	CurrentCompletedTaskCount uint32 `json:"currentCompletedTaskCount"`
	CurrentCorePoolSize       uint32 `json:"currentCorePoolSize"`
	CurrentLargestPoolSize    uint32 `json:"currentLargestPoolSize"`
	CurrentMaximumPoolSize    uint32 `json:"currentMaximumPoolSize"`
	CurrentPoolSize           uint32 `json:"currentPoolSize"`
	CurrentQueueSize          uint32 `json:"currentQueueSize"`
	CurrentTaskCount          uint32 `json:"currentTaskCount"`

	RollingMaxActiveThreads     uint32 `json:"rollingMaxActiveThreads"`
	RollingCountThreadsExecuted uint32 `json:"rollingCountThreadsExecuted"`

	RollingStatsWindow          uint32 `json:"propertyValue_metricsRollingStatisticalWindowInMilliseconds"`
	QueueSizeRejectionThreshold uint32 `json:"propertyValue_queueSizeRejectionThreshold"`
}

func latencySample(h *histogram) LatencySample {
	return LatencySample{
		P0: h.percentile(0), P25: h.percentile(25), P50: h.percentile(50), P75: h.percentile(75),
		P90: h.percentile(90), P95: h.percentile(95), P99: h.percentile(99), P995: h.percentile(99.5),
		P100: h.percentile(100),
	}
}

// Samples returns the circuit's two events now. The quote call is measured once: its
// execute and total latencies are the same figures.
func (b *Breaker) Samples() (CommandSample, ThreadPoolSample) {
	now := b.cfg.Now()
	b.mu.Lock()
	w := b.window(now)
	lat := b.latencies(now)
	open := b.open
	b.mu.Unlock()
	active := uint32(max(b.active.Load(), 0))
	maxC := uint32(b.cfg.MaxConcurrent)
	lats := latencySample(&lat)
	cmd := CommandSample{
		Type: "HystrixCommand", Name: Command, Group: Command,
		Time: now.UnixMilli(), ReportingHosts: 1,

		RequestCount: w.requests(), ErrorCount: w.errors(), ErrorPct: w.errorPercent(),
		CircuitBreakerOpen: open,

		RollingCountSuccess:            w.counts[succeeded],
		RollingCountFailure:            w.counts[failed],
		RollingCountThreadPoolRejected: w.counts[rejected],
		RollingCountShortCircuited:     w.counts[shortCircuited],
		RollingCountTimeout:            w.counts[timedOut],
		RollingCountFallbackSuccess:    w.fallbackSuccess,

		LatencyTotal: lats, LatencyTotalMean: lat.mean(),
		LatencyExecute: lats, LatencyExecuteMean: lat.mean(),

		RollingStatsWindow:                   windowSeconds * 1000,
		ExecutionIsolationStrategy:           "THREAD",
		CircuitBreakerEnabled:                true,
		CircuitBreakerErrorThresholdPercent:  uint32(b.cfg.ErrorPercent),
		CircuitBreakerSleepWindow:            uint32(b.cfg.SleepWindow.Milliseconds()),
		CircuitBreakerRequestVolumeThreshold: uint32(b.cfg.RequestVolume),
	}
	pool := ThreadPoolSample{
		Type: "HystrixThreadPool", Name: Command, ReportingHosts: 1,
		CurrentActiveCount:          active,
		RollingCountThreadsExecuted: w.executed,
		RollingMaxActiveThreads:     w.maxActive,
		CurrentPoolSize:             maxC, CurrentCorePoolSize: maxC,
		CurrentLargestPoolSize: maxC, CurrentMaximumPoolSize: maxC,
		RollingStatsWindow: windowSeconds * 1000,
	}
	return cmd, pool
}

// Sample is the stream's text for now: each event as "data:<json>\n\n".
func (b *Breaker) Sample() []byte {
	cmd, pool := b.Samples()
	out := make([]byte, 0, 3<<10)
	for _, v := range []any{&cmd, &pool} {
		j, err := json.Marshal(v)
		if err != nil {
			panic(err) // numbers, strings and bools always encode
		}
		out = append(out, "data:"...)
		out = append(out, j...)
		out = append(out, "\n\n"...)
	}
	return out
}
